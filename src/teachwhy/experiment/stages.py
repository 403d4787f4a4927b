"""Content-addressed stages: the unit of caching, resume and status in an experiment.

A stage is a function call whose identity is a hash of what defines its work (its config slice, the keys of
the stages it reads from, the model that does it). Its outputs go to ``<workspace>/stages/<kind>/<key>/`` and
it is finished exactly when ``result.json`` exists there — written atomically, last. So:

- re-running a finished experiment returns every stage's recorded result without calling a model;
- changing one arm changes only the keys downstream of that change, and only those stages run again;
- a stage killed at any point left no ``result.json``; the next run calls it again in the same folder, where
  it finds its partial work (resumable JSONL, training checkpoints, Inspect's cache) and finishes it.

`StageRunner.stage` is the whole interface. With ``dry_run`` it computes keys and reports each stage's state
(done / stale / running / failed / pending) without running anything: that is `teachwhy status`.

Several processes may run stages of one workspace at once (``teachwhy run`` workers, one per arm or one per
job of a Slurm array): a stage runs under an exclusive lock on its folder. With ``skip_busy``, a stage whose
lock another process holds is recorded as ``running`` and returns ``None`` (its dependants are ``blocked``),
so the worker goes on with other stages instead of failing.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from teachwhy.errors import UserError
from teachwhy.experiment.memory import release_memory, resident_mb
from teachwhy.resources import AREAS, package_dir, track_resources
from teachwhy.storage import atomic_write_json, content_hash

StageState = Literal["done", "stale", "running", "failed", "pending", "blocked"]
RESULT = "result.json"
FAILED = "failed.json"
LOCK = ".lock"


@dataclass
class StageContext:
    """What a stage function receives: its own folder and its identity."""

    stage_id: str
    key: str
    dir: Path
    workspace: Path

    def relative(self, path: str | Path) -> str:
        """A path inside the workspace, as stored in results (so a workspace can be moved)."""
        return os.path.relpath(Path(path), self.workspace)


@dataclass
class StageRecord:
    """One stage's identity and state, as `teachwhy status` shows it."""

    stage_id: str
    kind: str
    key: str | None
    state: StageState
    seconds: float | None = None
    error: str | None = None
    detail: str = ""


@dataclass
class StageRunner:
    """Runs (or, with ``dry_run``, inspects) content-addressed stages in a workspace."""

    workspace: Path
    dry_run: bool = False
    on_event: Callable[[str, StageRecord], None] | None = None
    skip_busy: bool = False  # a stage locked by another process is skipped (state "running"), not an error
    records: list[StageRecord] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.workspace = Path(self.workspace).resolve()
        self._log = self.workspace / "run.log"

    # -- the interface ----------------------------------------------------------------------------------

    def stage(
        self,
        kind: str,
        name: str,
        inputs: dict[str, Any],
        fn: Callable[[StageContext], dict[str, Any]],
        *,
        after: list[dict[str, Any] | None] | None = None,
        detail: str = "",
    ) -> dict[str, Any] | None:
        """The result of stage ``kind/name`` for ``inputs``, running ``fn`` only if it has not finished.

        Args:
            kind: the stage's kind (``generate``, ``mix``, ``train``, ``eval``…), its folder in ``stages/``.
            name: a readable name, unique within the experiment (``advice``, ``arm-a/step-20``).
            inputs: everything that defines the work, JSON-serialisable; it is hashed into the key.
            fn: does the work in ``ctx.dir`` and returns a JSON-serialisable result.
            after: the results of the stages this one reads from (their keys join this key). ``None`` in
                the list means an upstream stage has not finished, which in a dry run makes this one
                ``blocked``.
            detail: a short description for progress and the run log (e.g. the model doing the work).

        Returns:
            The stage's result, or ``None`` when it has not finished: in a dry run, or (with ``skip_busy``)
            while another process runs it.
        """
        stage_id = f"{kind}/{name}"
        upstream = after or []
        if any(u is None for u in upstream):
            self._record(StageRecord(stage_id, kind, None, "blocked", detail=detail))
            return None
        key = content_hash(kind, inputs, [u["__key__"] for u in upstream if u is not None])
        folder = self.workspace / "stages" / kind / key
        done = folder / RESULT
        if done.exists():
            result = self._read_result(done)
            self._remember(stage_id, key)
            record = StageRecord(stage_id, kind, key, "done", result.get("__seconds__"), detail=detail)
            self._record(record, event="cached")
            return result
        if self.dry_run:
            self._record(
                StageRecord(stage_id, kind, key, self._pending_state(stage_id, folder), detail=detail)
            )
            failed = folder / FAILED
            if failed.exists():
                self.records[-1].error = json.loads(failed.read_text(encoding="utf-8")).get("error")
            return None
        return self._run(stage_id, kind, key, folder, inputs, fn, detail)

    # -- running ----------------------------------------------------------------------------------------

    def _run(
        self,
        stage_id: str,
        kind: str,
        key: str,
        folder: Path,
        inputs: dict[str, Any],
        fn: Callable[[StageContext], dict[str, Any]],
        detail: str,
    ) -> dict[str, Any] | None:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_json(folder / "inputs.json", {"stage": stage_id, "key": key, "inputs": inputs})
        with self._lock(folder, stage_id) as locked:
            if not locked:  # another process runs it (only with skip_busy)
                busy = StageRecord(stage_id, kind, key, "running", detail="in another process")
                self._record(busy, event="busy")
                return None
            if (folder / RESULT).exists():  # another process finished it since we looked
                result = self._read_result(folder / RESULT)
                self._remember(stage_id, key)
                self._record(
                    StageRecord(stage_id, kind, key, "done", result.get("__seconds__")), event="cached"
                )
                return result
            record = StageRecord(stage_id, kind, key, "running", detail=detail)
            self._emit("start", record)
            self._write_log(f"start {stage_id} key={key} {detail}".rstrip())
            (folder / FAILED).unlink(missing_ok=True)
            started = time.perf_counter()
            try:
                with track_resources() as used:  # the data files it read, the user's overlay files among them
                    result = fn(StageContext(stage_id, key, folder, self.workspace))
            except BaseException as e:
                release_memory()
                message = " ".join(str(e).split()) or type(e).__name__
                atomic_write_json(
                    folder / FAILED,
                    {"error": message, "type": type(e).__name__, "traceback": traceback.format_exc()},
                )
                self._write_log(f"failed {stage_id} key={key}: {type(e).__name__}: {message}")
                record.state, record.error = "failed", message
                self._emit("failed", record)
                raise
            seconds = time.perf_counter() - started
            result = {**result, "__key__": key, "__stage__": stage_id, "__seconds__": round(seconds, 3)}
            result["__data_files__"] = {name: _source(path) for name, path in sorted(used.items())}
            result["__finished__"] = datetime.now(UTC).isoformat(timespec="seconds")
            atomic_write_json(folder / RESULT, result)
        self._remember(stage_id, key)
        release_memory()  # what the stage freed goes back to the system before the next one starts
        held = resident_mb()
        memory = f", {held / 1024:.1f} GB resident after" if held is not None else ""
        self._write_log(f"done {stage_id} key={key} in {seconds:.1f}s{memory}")
        record = StageRecord(stage_id, kind, key, "done", seconds, detail=detail)
        self._record(record, event="done")
        return result

    @contextmanager
    def _lock(self, folder: Path, stage_id: str) -> Iterator[bool]:
        """Hold the stage's lock; yields False (with ``skip_busy``) when another process holds it."""
        handle = (folder / LOCK).open("a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            if self.skip_busy:
                yield False
                return
            raise UserError(
                f"stage {stage_id} is already running in another process", file=folder / LOCK
            ) from None
        try:
            handle.truncate(0)
            handle.write(str(os.getpid()))
            handle.flush()
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()

    # -- state ------------------------------------------------------------------------------------------

    def _pending_state(self, stage_id: str, folder: Path) -> StageState:
        if folder.exists() and self._is_locked(folder):
            return "running"
        if (folder / FAILED).exists():
            return "failed"
        previous = self._index().get(stage_id)
        return "stale" if previous is not None else "pending"

    @staticmethod
    def _is_locked(folder: Path) -> bool:
        lock = folder / LOCK
        if not lock.exists():
            return False
        with lock.open("r") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(handle, fcntl.LOCK_UN)
            return False

    def _index_path(self) -> Path:
        return self.workspace / "stages" / "index.json"

    def _index(self) -> dict[str, str]:
        path = self._index_path()
        if not path.exists():
            return {}
        data: dict[str, str] = json.loads(path.read_text(encoding="utf-8"))
        return data

    def _remember(self, stage_id: str, key: str) -> None:
        if self.dry_run:
            return
        index = self._index()
        if index.get(stage_id) != key:
            index[stage_id] = key
            atomic_write_json(self._index_path(), index)

    @staticmethod
    def _read_result(path: Path) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return data

    # -- reporting --------------------------------------------------------------------------------------

    def _record(self, record: StageRecord, event: str | None = None) -> None:
        self.records.append(record)
        self._emit(event or record.state, record)

    def _emit(self, event: str, record: StageRecord) -> None:
        if self.on_event is not None:
            self.on_event(event, record)

    def _write_log(self, line: str) -> None:
        self._log.parent.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        with self._log.open("a", encoding="utf-8") as f:
            f.write(f"{stamp} {line}\n")


def _source(path: Path) -> str:
    """``package`` for a packaged data file, else the overlay file's path."""
    return "package" if any(path.is_relative_to(package_dir(a)) for a in AREAS) else str(path)
