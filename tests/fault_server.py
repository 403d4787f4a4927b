"""A fault-injecting OpenAI-compatible chat server on 127.0.0.1, for reliability tests.

It answers ``POST /v1/chat/completions`` with a reply built by the test (``respond(messages, tools)``), but,
at configured rates, fails instead: HTTP 500, HTTP 429 with ``Retry-After``, a hang longer than the client's
timeout, a 200 whose JSON body is cut off, an empty completion, or a completion that finishes with ``length``
or ``content_filter``. Which fault a request gets is a pure function of the seed, the request body and how
many times that same body was sent before, so a run is reproducible whatever order requests arrive in.
``ensure`` lists faults that the first new requests get whatever the draw, so every run sees each of them.
After ``max_faults`` faults on the same body it always answers, so retries converge; past ``max_requests`` it
refuses everything (503), so a runaway client cannot loop forever.

Every reply that a client could mistake for a good answer (``length``, ``content_filter``) carries a marker
word (``zqxfault``) in its text: a test can then grep everything a pipeline kept or scored for it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

MARKER = "zqxfault"
FAULTS = ("http_500", "http_429", "hang", "truncated_json", "empty", "length", "content_filter")

Reply = dict[str, Any]
"""``{"content": str}`` or ``{"tool_calls": [{"name": str, "arguments": dict}], "content": str}``."""
Respond = Callable[[list[dict[str, Any]], list[dict[str, Any]] | None], Reply]


@dataclass
class Served:
    """One request as the server saw it and what it answered."""

    body_key: str
    attempt: int
    fault: str  # one of FAULTS, or "ok"
    content: str
    authorization: str


@dataclass
class FaultServer:
    """The server and its log. Use as a context manager; ``base_url`` is ready inside it."""

    respond: Respond
    rates: Mapping[str, float]
    seed: int = 0
    max_faults: int = 2
    max_requests: int = 400
    hang_s: float = 30.0
    retry_after_s: int = 1
    ensure: tuple[str, ...] = ()
    """Faults served, in this order, to the first requests with a body not seen before (then the rates)."""
    served: list[Served] = field(default_factory=list)
    refused: int = 0
    _attempts: Counter[str] = field(default_factory=Counter)
    _faults: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ensured: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _runner: web.AppRunner | None = None
    port: int = 0

    def __post_init__(self) -> None:
        unknown = (set(self.rates) | set(self.ensure)) - set(FAULTS)
        assert not unknown, f"unknown faults {unknown}"
        assert sum(self.rates.values()) < 1.0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def faults(self) -> Counter[str]:
        """How many times each fault was served."""
        return Counter(s.fault for s in self.served if s.fault != "ok")

    # --- lifecycle -----------------------------------------------------------------------------------

    def __enter__(self) -> FaultServer:
        ready = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            app = web.Application()
            app.router.add_post("/v1/chat/completions", self._chat)
            self._runner = web.AppRunner(app, handle_signals=False)
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0, shutdown_timeout=0.5)
            loop.run_until_complete(site.start())
            server = site._server
            assert server is not None and server.sockets
            self.port = server.sockets[0].getsockname()[1]
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=serve, name="fault-server", daemon=True)
        self._thread.start()
        assert ready.wait(10), "the fault server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None:
            for task in asyncio.all_tasks(self._loop):  # requests still hanging
                self._loop.call_soon_threadsafe(task.cancel)
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    # --- requests ------------------------------------------------------------------------------------

    def _choose(self, body: bytes) -> tuple[str, int, str]:
        key = hashlib.sha256(body).hexdigest()[:16]
        with self._lock:
            attempt = self._attempts[key]
            self._attempts[key] += 1
            if self._faults[key] >= self.max_faults:
                return key, attempt, "ok"
            if attempt == 0 and self._ensured < len(self.ensure):
                self._ensured += 1
                self._faults[key] += 1
                return key, attempt, self.ensure[self._ensured - 1]
            draw = random.Random(f"{self.seed}:{key}:{attempt}").random()
            edge = 0.0
            for fault in FAULTS:
                edge += self.rates.get(fault, 0.0)
                if draw < edge:
                    self._faults[key] += 1
                    return key, attempt, fault
            return key, attempt, "ok"

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        auth = request.headers.get("Authorization", "")
        with self._lock:
            over = len(self.served) >= self.max_requests
            if over:
                self.refused += 1
        if over:
            return web.json_response({"error": {"message": "request budget spent"}}, status=503)
        payload = json.loads(body)
        if payload.get("stream"):
            return web.json_response({"error": {"message": "streaming is not served"}}, status=400)
        key, attempt, fault = self._choose(body)
        reply = self.respond(payload["messages"], payload.get("tools"))
        content = str(reply.get("content") or "")
        tool_calls = reply.get("tool_calls") or []
        finish = "tool_calls" if tool_calls else "stop"
        if fault in ("length", "content_filter"):
            words = content.split()
            content = " ".join([*words[: max(1, len(words) // 2)], f"{MARKER}-{fault}"])
            tool_calls, finish = [], fault
        elif fault == "empty":
            content, tool_calls = "", []
        with self._lock:
            self.served.append(Served(key, attempt, fault, content, auth))
        if fault == "http_500":
            return web.json_response({"error": {"message": "injected server error"}}, status=500)
        if fault == "http_429":
            return web.json_response(
                {"error": {"message": "injected rate limit", "type": "rate_limit_exceeded"}},
                status=429,
                headers={"Retry-After": str(self.retry_after_s)},
            )
        if fault == "hang":
            await asyncio.sleep(self.hang_s)
            return web.json_response({"error": {"message": "too late"}}, status=504)
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if tool_calls:
            message["tool_calls"] = [
                {
                    "id": f"call_{key}_{i}",
                    "type": "function",
                    "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])},
                }
                for i, c in enumerate(tool_calls)
            ]
        answer = {
            "id": f"chatcmpl-{key}-{attempt}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": payload.get("model", "fault"),
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {
                "prompt_tokens": len(body) // 4,
                "completion_tokens": max(1, len(content.split())),
                "total_tokens": len(body) // 4 + max(1, len(content.split())),
            },
        }
        text = json.dumps(answer)
        if fault == "truncated_json":
            text = text[: len(text) // 2]
        return web.Response(text=text, content_type="application/json")
