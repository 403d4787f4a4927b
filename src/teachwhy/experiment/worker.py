"""`teachwhy run` as one of several workers sharing a workspace (one per arm, or any number of equal ones).

A worker repeatedly walks the stage graph of its arms (all arms by default) and runs every stage that has not
finished. A stage another worker holds (its lock is taken) is skipped; stages that depend on it are blocked.
While something of this worker's selection is blocked, it waits and walks again, so a stage shared with
another worker (the untrained target's evaluation, data shared by two arms) is picked up once it finishes.
When only stages held by other workers remain, it stops: those workers finish them.

Each worker then writes ``summary.json`` from every stage that has finished in the workspace, all arms
included, under a lock; the last worker to finish writes the complete summary, and ``teachwhy report``
renders whatever summary is there.
"""

from __future__ import annotations

import fcntl
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

from teachwhy.config import ExperimentConfig
from teachwhy.experiment.pipeline import SUMMARY_FILE, ExperimentPipeline, ProgressHook
from teachwhy.experiment.stages import StageRecord, StageRunner
from teachwhy.experiment.summary import ExperimentSummary

SUMMARY_LOCK = ".summary.lock"


@dataclass
class WorkerOutcome:
    """What one worker saw at the end.

    Attributes:
        summary: the summary it wrote (every finished stage of every arm).
        ran: stages this worker ran to completion.
        elsewhere: stages of its selection that other processes were still running when it stopped.
        unfinished: stages of the whole experiment that have not finished (other arms included).
    """

    summary: ExperimentSummary
    ran: list[str] = field(default_factory=list)
    elsewhere: list[str] = field(default_factory=list)
    unfinished: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.unfinished


def run_worker(
    config: ExperimentConfig,
    *,
    arms: Sequence[str] | None = None,
    on_event: Callable[[str, StageRecord], None] | None = None,
    progress: Callable[[str], AbstractContextManager[ProgressHook | None]] | None = None,
    eval_display: str = "none",
    poll_seconds: float = 10.0,
) -> WorkerOutcome:
    """Run the unfinished stages of ``arms`` that no other process holds; write the summary.

    Raises:
        UserError: an unknown arm, or any stage's user error.
    """
    ran: list[str] = []

    def record(event: str, stage: StageRecord) -> None:
        if event == "done":
            ran.append(stage.stage_id)
        if on_event is not None:
            on_event(event, stage)

    while True:
        runner = StageRunner(config.workspace_path, on_event=record, skip_busy=True)
        ExperimentPipeline(
            config, runner, progress=progress, eval_display=eval_display, arms=arms
        ).run_stages()
        elsewhere = _unique(r.stage_id for r in runner.records if r.state == "running")
        waiting = any(r.state == "blocked" for r in runner.records)
        if not elsewhere or not waiting:
            break
        time.sleep(poll_seconds)  # something of ours waits for another worker's stage
    summary, unfinished = write_summary(config)
    return WorkerOutcome(summary=summary, ran=ran, elsewhere=elsewhere, unfinished=unfinished)


def write_summary(config: ExperimentConfig) -> tuple[ExperimentSummary, list[str]]:
    """Write ``summary.json`` from every finished stage; returns it and the unfinished stages' ids.

    The summary lock makes reading the stages and writing the file one step, so a worker that assembled an
    older state never overwrites a newer summary written in between.
    """
    workspace = config.workspace_path
    workspace.mkdir(parents=True, exist_ok=True)
    with (workspace / SUMMARY_LOCK).open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            runner = StageRunner(workspace, dry_run=True)
            summary = ExperimentPipeline(config, runner).assemble()
            unfinished = _unique(r.stage_id for r in runner.records if r.state != "done")
            summary.unfinished = unfinished
            summary.write(workspace / SUMMARY_FILE)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return summary, unfinished


def _unique(ids: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(ids))
