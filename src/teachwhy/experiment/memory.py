"""Give memory back between stages, and say how much the process holds.

A run of many stages in one process (evaluations that load checkpoints, training, generation) grew to 24 GB
and was killed, while each stage alone peaks at a few GB. Two things keep memory after a stage ends:

- objects in reference cycles (a trainer and its callbacks, a model and its hooks) wait for Python's
  full collection, which runs rarely because tensors count as one small object each;
- glibc keeps freed blocks in its heaps (the main one and one arena per thread that allocated), so
  memory a stage freed is still counted in the process's resident size and is reused only by the same
  arena.

:func:`release_memory` runs a full collection and then ``malloc_trim(0)``, which hands the free pages of
every glibc heap back to the system. :func:`resident_mb` reads the resident size for the run log, so a user
sees per stage what the process holds.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
from functools import cache


@cache
def _libc() -> ctypes.CDLL | None:
    """The C library, where it has ``malloc_trim`` (glibc); ``None`` elsewhere (macOS, musl)."""
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    return libc if hasattr(libc, "malloc_trim") else None


def release_memory() -> bool:
    """Collect unreachable objects and return free heap pages to the system.

    Returns:
        True when the C library's heaps were trimmed (glibc), False when only Python's collection ran.
    """
    gc.collect()
    libc = _libc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


def resident_mb() -> float | None:
    """The resident size of this process in MiB, or ``None`` where ``/proc`` is not available."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            pages = int(f.read().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
