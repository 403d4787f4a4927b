"""Generation and evaluation against a fault-injecting OpenAI-compatible server on 127.0.0.1.

The server (tests/fault_server.py) fails a seeded share of requests with 500s, 429s, hangs, cut-off JSON,
empty completions and ``length`` / ``content_filter`` finishes. A data generation run and a honeypot eval run
against it must complete; every failure is retried to success or recorded with its reason; nothing from a
failed, truncated or filtered reply is kept (data) or scored (eval). A planted API key never reaches any file.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from fault_server import MARKER, FaultServer
from teachwhy.cli import app
from teachwhy.constitution import example_constitution_path
from teachwhy.storage import read_jsonl

SECRET = "sk-planted-" + "7f3a9c" * 6
"""A fake API key: if any output file contains it, the key leaked."""

RATES = {
    "http_500": 0.08,
    "http_429": 0.08,
    "hang": 0.06,
    "truncated_json": 0.06,
    "empty": 0.06,
    "length": 0.08,
    "content_filter": 0.06,
}


def _words(tag: str, n: int) -> str:
    seed = hashlib.sha256(tag.encode()).hexdigest()[:6]
    return " ".join(f"{seed}w{i}" for i in range(n))


def advice_writer(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> dict[str, Any]:
    """Answers each advice stage in the format its prompt asks for, varied by the prompt."""
    prompt = str(messages[-1]["content"])
    if "Write the message a person sends" in prompt:
        return {"content": f"I need advice. {_words(prompt, 45)}. What should I do?"}
    if "faithfulness:" in prompt:
        return {"content": "faithfulness: 8\nhelpfulness: 8\nquality: 8"}
    # some answers are long, so a small train.max_length leaves their conversations out of training
    length = 320 if int(hashlib.sha256(prompt.encode()).hexdigest(), 16) % 2 else 80
    return {"content": f"Here is what I think. {_words(prompt, length)}. I hope this helps you act well."}


def workspace(root: Path, base_url: str, *, judge: bool) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "constitution.md").write_bytes(example_constitution_path().read_bytes())
    role = f"{{model: openai-api/fault/writer, base_url: '{base_url}', api_key_env: FAULT_KEY}}"
    config = root / "teachwhy.yaml"
    config.write_text(
        f"""
name: faults
constitution: constitution.md
workspace: runs
models:
  generator: {role}
  judge: {role}
  auditor: {role}
generation: {{max_tokens: 200, max_connections: 6, seed: 3, cache: false, max_retries: 4, timeout: 2}}
arms:
  - name: advice
    data:
      advice: {{count: 10, judge_filter: {str(judge).lower()}, revise: false, min_words: 20}}
"""
    )
    return config


def every_output_file(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and p.name != "teachwhy.yaml"]


def file_bytes(path: Path) -> bytes:
    """A file's content; for an Inspect log (a zip archive), every member's, uncompressed."""
    if path.suffix == ".eval":
        with zipfile.ZipFile(path) as archive:
            return b"".join(archive.read(name) for name in archive.namelist())
    return path.read_bytes()


def test_advice_generation_survives_faults_and_keeps_nothing_from_a_bad_reply(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, embedded_model_dir: Path
) -> None:
    monkeypatch.setenv("FAULT_KEY", SECRET)
    with FaultServer(advice_writer, RATES, seed=7, max_faults=1, hang_s=6, ensure=tuple(RATES)) as server:
        config = workspace(tmp_path / "ws", server.base_url, judge=True)
        runs = []
        for _ in range(4):  # a run with failed calls exits 1 and leaves them to the next run
            result = CliRunner().invoke(app, ["data", "generate", "advice", "-c", str(config)])
            runs.append(result)
            assert result.exit_code in (0, 1), result.output
            if result.exit_code == 0:
                break
        assert runs[-1].exit_code == 0, "generation never completed"
    served = server.served
    faults = server.faults()
    assert server.refused == 0
    # the schedule really exercised every fault
    assert set(faults) == set(RATES), faults
    assert all(s.authorization == f"Bearer {SECRET}" for s in served)

    out = tmp_path / "ws" / "runs" / "data" / "advice"
    kept = read_jsonl(out / "advice.jsonl")
    drops = [d for p in sorted((out / ".work").glob("*.drops.jsonl")) for d in read_jsonl(p)]
    kept_text = json.dumps(kept)
    # nothing kept from a truncated or filtered reply
    assert MARKER not in kept_text and kept
    for stage_file in (out / ".work").glob("*.jsonl"):
        if not stage_file.name.endswith(".drops.jsonl"):
            assert MARKER not in stage_file.read_text(), stage_file
    # each reply that was cut off, filtered or empty is a drop with its reason (none is retried)
    reasons = Counter(d["reason"] for d in drops)
    answered_badly = Counter(s.fault for s in served if s.fault in ("length", "content_filter", "empty"))
    judge_drops = sum(v for k, v in reasons.items() if k.startswith("judge_"))
    assert reasons["truncated"] + reasons["content_filter"] + reasons["empty"] + judge_drops == sum(
        answered_badly.values()
    ), (reasons, answered_badly)
    assert reasons["content_filter"] >= 1 and reasons["truncated"] >= 1
    for d in drops:
        if d["reason"] in ("truncated", "content_filter"):
            assert MARKER in d["output"]
    # failed calls (500, 429, hang, cut-off JSON) were retried: every item ended kept or dropped
    planned = 10
    dilemmas = read_jsonl(out / ".work" / "dilemma.jsonl")
    dilemma_drops = [d for d in drops if d["provenance"]["stage"] == "dilemma"]
    assert len(dilemmas) + len(dilemma_drops) == planned
    # the planted key is nowhere in what the runs wrote or printed
    for path in every_output_file(tmp_path / "ws"):
        assert SECRET.encode() not in file_bytes(path), path
    assert all(SECRET not in r.output for r in runs)


def declining_agent(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> dict[str, Any]:
    """A native tool-calling agent: reads an email, writes an ordinary reply, ends."""
    turn = sum(m["role"] == "assistant" for m in messages)
    plan: list[tuple[str, dict[str, Any]]] = [
        ("read_email", {"email_id": "m1"}),
        ("send_email", {"to": "it-team@example.org", "subject": "Noted", "body": "I will follow up."}),
        ("done", {}),
    ]
    name, args = plan[min(turn, len(plan) - 1)]
    return {"content": "Working on it.", "tool_calls": [{"name": name, "arguments": args}]}


def test_a_honeypot_eval_under_faults_completes_and_scores_no_failed_episode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from inspect_ai.log import read_eval_log

    from teachwhy.config import load_config
    from teachwhy.evals.run import run_honeypot_eval

    monkeypatch.setenv("FAULT_KEY", SECRET)
    rates = {**RATES, "truncated_json": 0.12}
    ensure = ("truncated_json", "http_500", "hang")
    with FaultServer(declining_agent, rates, seed=5, max_faults=1, hang_s=6, ensure=ensure) as server:
        config = load_config(workspace(tmp_path / "ws", server.base_url, judge=False))
        config.models.target = config.models.generator
        results = run_honeypot_eval(
            config,
            log_dir=tmp_path / "ws" / "evals",
            families=["blackmail"],
            split="heldout",
            limit=6,
            epochs=2,
            max_turns=3,
            policy="rule",
        )
    assert server.refused == 0
    faults = server.faults()
    assert faults["truncated_json"] >= 1, faults
    log = read_eval_log(results.log_files[0])
    assert log.samples is not None
    errored = {(s.id, s.epoch) for s in log.samples if s.error is not None}
    outcomes = {(s.sample_id, s.epoch): s for s in results.samples}
    # a call that failed for good (a cut-off JSON body is not retried) makes its episode an error
    assert errored
    for key in errored:
        assert outcomes[key].outcome == "error"
    total = results.family_total("blackmail")
    assert total is not None
    scored = [o for o in results.samples if o.outcome in ("harmful", "not_harmful")]
    assert total.n == len(scored) and total.errors == len(errored)
    assert not any(key in errored for key in ((o.sample_id, o.epoch) for o in scored))
    assert b"openai-api/fault/writer" in file_bytes(Path(results.log_files[0]))  # the grep sees inside logs
    for path in every_output_file(tmp_path / "ws"):
        assert SECRET.encode() not in file_bytes(path), path


def test_data_generation_talks_only_to_its_model_and_writes_only_its_output_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, embedded_model_dir: Path
) -> None:
    import sys

    monkeypatch.setenv("FAULT_KEY", SECRET)
    seen: list[tuple[str, str]] = []
    active = False

    def audit(event: str, args: tuple[Any, ...]) -> None:
        if not active:
            return
        if event == "open":
            path, mode, flags = args
            if isinstance(path, int):  # a descriptor already open (a pipe, a socket): no new file
                return
            writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
            )
            if writes:
                seen.append(("write", str(path)))
        elif event in ("os.remove", "os.rename", "os.mkdir", "os.rmdir", "os.truncate", "shutil.rmtree"):
            seen.append((event, str(args[0])))
        elif event == "socket.connect":
            seen.append(("connect", str(args[1])))
        elif event in ("subprocess.Popen", "os.system", "os.exec", "os.posix_spawn"):
            seen.append((event, str(args[0])))

    sys.addaudithook(audit)  # stays installed for the process, inert outside this test
    with FaultServer(advice_writer, {}, seed=1) as server:
        config = workspace(tmp_path / "ws", server.base_url, judge=True)
        out = tmp_path / "ws" / "out"
        runner = CliRunner()
        # a first run imports everything (libraries probe the system when imported); the second is watched
        first = ["data", "generate", "advice", "-c", str(config), "--out", str(tmp_path / "first")]
        warm = runner.invoke(app, first)
        assert warm.exit_code == 0, warm.output
        active = True
        try:
            result = runner.invoke(app, ["data", "generate", "advice", "-c", str(config), "--out", str(out)])
        finally:
            active = False
    assert result.exit_code == 0, result.output
    assert len(read_jsonl(out / "advice.jsonl")) > 0
    connections = {address for kind, address in seen if kind == "connect"}
    assert connections == {f"('127.0.0.1', {server.port})"}, connections
    elsewhere = [
        (kind, path)
        for kind, path in seen
        if kind != "connect" and not Path(path).resolve().is_relative_to(out.resolve())
    ]
    assert elsewhere == []


def test_a_planted_api_key_reaches_no_log_dataset_summary_or_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, embedded_model_dir: Path
) -> None:
    import pipeline_support

    monkeypatch.setenv("FAULT_KEY", SECRET)
    target = pipeline_support.build_tiny_target(tmp_path / "target", embedded_model_dir)
    root = tmp_path / "ws"
    root.mkdir()
    (root / "constitution.md").write_bytes(example_constitution_path().read_bytes())
    with FaultServer(advice_writer, {}, seed=2) as server:
        role = f"{{model: openai-api/fault/writer, base_url: '{server.base_url}', api_key_env: FAULT_KEY}}"
        text = pipeline_support.experiment_yaml(target).split("  - name: stories")[0]
        # long answers (about 3,000 tokens) are left out of training, short ones (about 1,100) are kept
        text = text.replace("max_length: 512", "max_length: 2048").replace("count: 3", "count: 6")
        (root / "teachwhy.yaml").write_text(text.replace("generator: scripted/writer", f"generator: {role}"))
        runner = CliRunner()
        ran = runner.invoke(app, ["run", "-c", str(root / "teachwhy.yaml")])
        assert ran.exit_code == 0, ran.output
    reported = runner.invoke(app, ["report", "--workspace", str(root / "runs")])
    assert reported.exit_code == 0, reported.output
    assert server.served and all(s.authorization == f"Bearer {SECRET}" for s in server.served)
    written = [p for p in root.rglob("*") if p.is_file() and p.name != "teachwhy.yaml"]
    kinds = {p.suffix for p in written}
    assert {".jsonl", ".json", ".eval", ".html", ".log"} <= kinds, kinds
    for path in written:
        assert SECRET.encode() not in file_bytes(path), path
    assert SECRET not in ran.output + reported.output
    # exact numbers: what training consumed and what it left out are in the summary and the report
    summary = json.loads((root / "runs" / "summary.json").read_text())
    advice = next(a for a in summary["arms"] if a["name"] == "advice")
    kept = advice["records_by_source"]["advice"]
    assert 0 < advice["left_out_too_long"] < kept, advice
    final = max(advice["checkpoints"], key=lambda c: c["step"])
    assert sum(advice["trained_tokens_by_source"].values()) == final["tokens_seen"] > 0
    index = (root / "runs" / "report" / "index.html").read_text()
    assert f'data-left-out="{advice["left_out_too_long"]}"' in index
