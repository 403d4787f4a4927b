"""Trainer callbacks: the training log beside the checkpoints, a rich progress bar, and checkpoint cadence."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from teachwhy.storage import JsonlAppender, read_jsonl


class TokenCounter:
    """Training tokens consumed so far, per data source (cumulative across stages and resumes)."""

    def __init__(self, sources: Sequence[str], start: dict[str, int] | None = None) -> None:
        self.sources = list(sources)
        self.counts = {s: 0 for s in self.sources}
        for source, count in (start or {}).items():
            self.counts[source] = self.counts.get(source, 0) + int(count)

    def add(self, per_row: torch.Tensor) -> None:
        """Add a batch's ``source_tokens`` (rows × sources, or one vector of sources)."""
        totals = per_row.reshape(-1, len(self.sources)).sum(dim=0).tolist()
        for source, count in zip(self.sources, totals, strict=True):
            self.counts[source] += int(count)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def snapshot(self) -> dict[str, int]:
        return dict(self.counts)


class TrainingLog(TrainerCallback):
    """Appends one JSON line per optimizer step: loss, learning rate, tokens per source, tokens/s.

    The ``id`` of a line is ``<stage>:<stage step>``; lines are fsynced as written, and a line torn by a
    kill is
    cut off when the log is reopened.
    """

    def __init__(self, path: Path, *, stage: str, offset: int, counter: TokenCounter) -> None:
        self.path = path
        self.stage = stage
        self.offset = offset
        self.counter = counter
        self._last_time = time.perf_counter()
        self._last_tokens = counter.total

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self._last_time = time.perf_counter()
        self._last_tokens = self.counter.total

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        if not logs or "loss" not in logs or not state.is_world_process_zero:
            return
        now = time.perf_counter()
        tokens = self.counter.total
        elapsed = max(now - self._last_time, 1e-9)
        record = {
            "id": f"{self.stage}:{state.global_step}",
            "stage": self.stage,
            "step": self.offset + state.global_step,
            "stage_step": state.global_step,
            "epoch": logs.get("epoch"),
            "loss": logs["loss"],
            "learning_rate": logs.get("learning_rate"),
            "grad_norm": logs.get("grad_norm"),
            "token_accuracy": logs.get("mean_token_accuracy"),
            "tokens": tokens,
            "tokens_by_source": self.counter.snapshot(),
            "tokens_per_s": (tokens - self._last_tokens) / elapsed,
            "time": time.time(),
        }
        with JsonlAppender(self.path) as log:
            log.append(record)
        self._last_time, self._last_tokens = now, tokens


def read_log(path: Path) -> list[dict[str, Any]]:
    """The training log's records (a torn last line is ignored)."""
    if not path.exists():
        return []
    JsonlAppender(path).close()  # opening repairs a line torn by a kill
    return read_jsonl(path)


class RichProgress(TrainerCallback):
    """A progress bar per stage: steps, loss, tokens/s and the time left."""

    def __init__(self, *, stage: str, counter: TokenCounter) -> None:
        self.stage = stage
        self.counter = counter
        self._progress: Progress | None = None
        self._task: Any = None
        self._start = 0.0
        self._start_tokens = 0

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if not state.is_world_process_zero:
            return
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TextColumn("{task.fields[speed]} tok/s"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
        )
        self._progress.start()
        self._task = self._progress.add_task(
            f"train {self.stage}", total=state.max_steps, completed=state.global_step, loss="-", speed="-"
        )
        self._start, self._start_tokens = time.perf_counter(), self.counter.total

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if self._progress is not None:
            speed = (self.counter.total - self._start_tokens) / max(time.perf_counter() - self._start, 1e-9)
            self._progress.update(self._task, completed=state.global_step, speed=f"{speed:,.0f}")

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        if self._progress is not None and logs and "loss" in logs:
            self._progress.update(self._task, loss=f"{logs['loss']:.4f}")

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


class CheckpointCadence(TrainerCallback):
    """Saves every ``save_steps`` global steps and at the end of the stage, then runs ``after_save``.

    ``after_save(trainer_checkpoint, stage_step)`` merges the checkpoint and marks it complete (main process).
    The other processes wait at ``barrier`` meanwhile, so none of them is left inside the next step's
    gradient all-reduce (or FSDP gather) while rank 0 merges; the wait is bounded by the process group's
    timeout (``ddp_timeout``, see :func:`teachwhy.train.trainer.sft_config`).
    """

    def __init__(
        self,
        *,
        save_steps: int,
        offset: int,
        after_save: Callable[[Path, int], None],
        barrier: Callable[[], None] = lambda: None,
    ) -> None:
        self.save_steps = save_steps
        self.offset = offset
        self.after_save = after_save
        self.barrier = barrier

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        global_step = self.offset + state.global_step
        if global_step % self.save_steps == 0 or state.global_step >= state.max_steps:
            control.should_save = True

    def on_save(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if state.is_world_process_zero:
            self.after_save(
                Path(args.output_dir or ".") / f"checkpoint-{state.global_step}", state.global_step
            )
        self.barrier()
