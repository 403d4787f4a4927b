"""Content-addressed stages: caching, invalidation, failure, resume and status."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from teachwhy.experiment.stages import StageContext, StageRunner


class Counter:
    """A stage function that counts its calls and writes a file into its folder."""

    def __init__(self, value: str) -> None:
        self.value = value
        self.calls = 0

    def __call__(self, ctx: StageContext) -> dict[str, Any]:
        self.calls += 1
        (ctx.dir / "out.txt").write_text(self.value)
        return {"value": self.value, "file": ctx.relative(ctx.dir / "out.txt")}


def pipeline(runner: StageRunner, gen: Counter, train: Counter, *, size: int = 3) -> dict[str, Any] | None:
    data = runner.stage("generate", "advice", {"count": size}, gen)
    return runner.stage("train", "arm", {"lr": 0.1}, train, after=[data])


def test_finished_stages_are_not_run_again(tmp_path: Path) -> None:
    gen, train = Counter("d"), Counter("t")
    first = pipeline(StageRunner(tmp_path), gen, train)
    second = pipeline(StageRunner(tmp_path), gen, train)
    assert (gen.calls, train.calls) == (1, 1)
    assert first == second
    assert first is not None and (tmp_path / first["file"]).read_text() == "t"


def test_changing_an_input_reruns_it_and_everything_downstream_only(tmp_path: Path) -> None:
    gen, train = Counter("d"), Counter("t")
    pipeline(StageRunner(tmp_path), gen, train)
    other = Counter("t2")
    runner = StageRunner(tmp_path)
    runner.stage("generate", "advice", {"count": 3}, gen)  # unchanged: cached
    pipeline(runner, gen, other, size=4)  # changed: generate and train both rerun
    assert gen.calls == 2 and other.calls == 1


def test_a_failed_stage_leaves_no_result_and_is_reported(tmp_path: Path) -> None:
    def boom(ctx: StageContext) -> dict[str, Any]:
        (ctx.dir / "partial.jsonl").write_text('{"id": 1}\n')
        raise RuntimeError("model server went away")

    with pytest.raises(RuntimeError):
        StageRunner(tmp_path).stage("generate", "advice", {"count": 3}, boom)
    status = StageRunner(tmp_path, dry_run=True)
    assert status.stage("generate", "advice", {"count": 3}, boom) is None
    (record,) = status.records
    assert record.state == "failed" and record.error == "model server went away"

    # the next run resumes in the same folder and finds its partial work
    def resume(ctx: StageContext) -> dict[str, Any]:
        return {"seen": (ctx.dir / "partial.jsonl").read_text()}

    result = StageRunner(tmp_path).stage("generate", "advice", {"count": 3}, resume)
    assert result is not None and result["seen"] == '{"id": 1}\n'


def test_status_distinguishes_done_stale_pending_and_blocked(tmp_path: Path) -> None:
    gen, train = Counter("d"), Counter("t")
    pipeline(StageRunner(tmp_path), gen, train)

    status = StageRunner(tmp_path, dry_run=True)
    pipeline(status, gen, train)
    assert [r.state for r in status.records] == ["done", "done"]

    status = StageRunner(tmp_path, dry_run=True)
    pipeline(status, gen, train, size=5)
    assert [r.state for r in status.records] == ["stale", "blocked"]

    status = StageRunner(tmp_path, dry_run=True)
    status.stage("generate", "stories", {"count": 1}, gen)
    assert status.records[0].state == "pending"
    assert gen.calls == 1 and train.calls == 1  # a dry run never runs anything


def test_results_and_run_log_record_what_ran(tmp_path: Path) -> None:
    gen = Counter("d")
    result = StageRunner(tmp_path).stage("generate", "advice", {"count": 3}, gen, detail="generator=embedded")
    assert result is not None
    stored = json.loads((tmp_path / "stages" / "generate" / result["__key__"] / "result.json").read_text())
    assert stored["value"] == "d" and stored["__stage__"] == "generate/advice"
    log = (tmp_path / "run.log").read_text()
    assert "start generate/advice" in log and "generator=embedded" in log and "done generate/advice" in log


def _hold_lock(runner: StageRunner, kind: str, name: str, inputs: dict[str, Any]) -> Any:
    """Take a stage's lock the way another process would (a separate open file, flock)."""
    import fcntl

    from teachwhy.storage import content_hash

    folder = runner.workspace / "stages" / kind / content_hash(kind, inputs, [])
    folder.mkdir(parents=True)
    handle = (folder / ".lock").open("a")
    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return handle


def test_a_stage_held_by_another_worker_is_skipped_and_blocks_its_dependants(tmp_path: Path) -> None:
    from teachwhy.errors import UserError

    events: list[tuple[str, str]] = []
    runner = StageRunner(tmp_path, skip_busy=True, on_event=lambda e, r: events.append((e, r.stage_id)))
    handle = _hold_lock(runner, "generate", "advice", {"count": 3})
    gen, train = Counter("d"), Counter("t")
    assert pipeline(runner, gen, train) is None
    assert (gen.calls, train.calls) == (0, 0)
    assert [(r.stage_id, r.state) for r in runner.records] == [
        ("generate/advice", "running"),
        ("train/arm", "blocked"),
    ]
    assert ("busy", "generate/advice") in events
    with pytest.raises(UserError, match="already running in another process"):
        pipeline(StageRunner(tmp_path), gen, train)  # without skip_busy, as before
    handle.close()  # the other worker is gone: the next pass runs everything
    assert pipeline(StageRunner(tmp_path, skip_busy=True), gen, train) is not None
    assert (gen.calls, train.calls) == (1, 1)


def test_a_stage_finished_by_another_worker_while_waiting_for_its_lock_is_not_run_again(
    tmp_path: Path,
) -> None:
    gen = Counter("d")
    first = StageRunner(tmp_path).stage("generate", "advice", {"count": 3}, gen)
    assert first is not None
    # this worker saw no result.json (it looked before the other finished): _run re-checks under the lock
    runner = StageRunner(tmp_path, skip_busy=True)
    folder = tmp_path / "stages" / "generate" / first["__key__"]
    again = runner._run("generate/advice", "generate", first["__key__"], folder, {"count": 3}, gen, "")
    assert again == first and gen.calls == 1
