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
