"""Memory between stages: what a stage freed goes back to the system, and the run log says what is held."""

from __future__ import annotations

import gc
import re
import weakref
from pathlib import Path
from typing import Any

import pytest

from teachwhy.experiment import memory, stages
from teachwhy.experiment.stages import StageContext, StageRunner

glibc = pytest.mark.skipif(
    memory._libc() is None or memory.resident_mb() is None, reason="needs glibc and /proc (Linux)"
)


@glibc
def test_release_memory_hands_freed_heap_pages_back() -> None:
    """Blocks below glibc's mmap threshold live in its heap; freed with one block still live above them,
    they stay resident until the heap is trimmed (what made a long run grow to 24 GB)."""
    base = memory.resident_mb()
    assert base is not None
    blocks = [bytearray(100_000) for _ in range(3000)]  # ~300 MB, touched
    for block in blocks:
        block[::4096] = b"x" * len(block[::4096])
    keep = blocks[-1]  # pins the top of the heap, so free() alone cannot shrink it
    del blocks
    gc.collect()
    freed = memory.resident_mb()
    assert freed is not None and freed > base + 200  # freed, but still held by the process
    assert memory.release_memory() is True
    after = memory.resident_mb()
    assert after is not None and after < freed - 200
    assert keep[0] == ord("x")


def test_release_memory_collects_objects_in_reference_cycles() -> None:
    class Node:
        other: Any = None

    a, b = Node(), Node()
    a.other, b.other = b, a  # a cycle, like a trainer and its callbacks
    ref = weakref.ref(a)
    gc.disable()
    try:
        del a, b
        assert ref() is not None
        memory.release_memory()
        assert ref() is None
    finally:
        gc.enable()


def _stage(ctx: StageContext) -> dict[str, Any]:
    return {"ok": True}


def _failing(ctx: StageContext) -> dict[str, Any]:
    raise RuntimeError("boom")


def test_every_stage_releases_memory_and_logs_what_is_resident(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    monkeypatch.setattr(stages, "release_memory", lambda: calls.append(1) or True)
    runner = StageRunner(tmp_path)
    runner.stage("generate", "advice", {"n": 1}, _stage)
    assert calls == [1]
    with pytest.raises(RuntimeError):
        runner.stage("train", "arm", {"n": 2}, _failing)
    assert calls == [1, 1]  # a failed stage frees what it held too
    runner.stage("generate", "advice", {"n": 1}, _stage)  # cached: nothing ran, nothing to release
    assert calls == [1, 1]
    log = (tmp_path / "run.log").read_text()
    done = re.search(r"done generate/advice key=\w+ in [\d.]+s(.*)$", log, re.M)
    assert done is not None
    if memory.resident_mb() is not None:
        assert re.fullmatch(r", \d+\.\d GB resident after", done.group(1))
