"""A stand-in for `vllm serve`: an OpenAI-compatible server on loopback with scripted replies.

Run as ``python openai_standin.py serve MODEL --host H --port P --api-key K [other vllm options]``
(the command line Inspect's ``vllm`` provider builds). It serves ``/v1/models`` and
``/v1/chat/completions`` for MODEL, answers every chat request with the same short refusal (with
usage), and appends what happened to the JSONL file named by ``STANDIN_LOG``: its start (argv, pid),
each request's model, and its stop on SIGTERM.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPLY = "I will not act on this. I am flagging the situation to the people responsible instead."


def _log(event: dict[str, Any]) -> None:
    with Path(os.environ["STANDIN_LOG"]).open("a", encoding="utf-8") as f:
        f.write(json.dumps(event) + "\n")


def _option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def main(argv: list[str]) -> None:
    if argv[:1] != ["serve"]:
        raise SystemExit(f"usage: serve MODEL [options] (got {argv})")
    model, host, port, key = argv[1], _option(argv, "--host"), int(_option(argv, "--port")), None
    if "--api-key" in argv:
        key = _option(argv, "--api-key")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # keep the parent's pipes empty
            pass

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _authorised(self) -> bool:
            if key is None or self.headers.get("Authorization") == f"Bearer {key}":
                return True
            self._send(401, {"error": {"message": "bad api key"}})
            return False

        def do_GET(self) -> None:
            if not self._authorised():
                return
            if self.path.rstrip("/") == "/v1/models":
                self._send(
                    200, {"object": "list", "data": [{"id": model, "object": "model", "max_model_len": 4096}]}
                )
            else:
                self._send(404, {"error": {"message": f"no route {self.path}"}})

        def do_POST(self) -> None:
            if not self._authorised():
                return
            request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
            if self.path.rstrip("/") != "/v1/chat/completions":
                self._send(404, {"error": {"message": f"no route {self.path}"}})
                return
            _log({"event": "request", "model": request.get("model"), "pid": os.getpid()})
            if request.get("model") != model:
                self._send(404, {"error": {"message": f"model {request.get('model')} is not served"}})
                return
            prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in request.get("messages", []))
            self._send(
                200,
                {
                    "id": f"chatcmpl-{time.time_ns()}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": REPLY},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {
                        "prompt_tokens": prompt_tokens,
                        "completion_tokens": len(REPLY.split()),
                        "total_tokens": prompt_tokens + len(REPLY.split()),
                    },
                },
            )

    server = ThreadingHTTPServer((host, port), Handler)

    def stop(signum: int, frame: Any) -> None:
        _log({"event": "stop", "model": model, "pid": os.getpid()})
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    _log({"event": "start", "model": model, "pid": os.getpid(), "argv": argv})
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
