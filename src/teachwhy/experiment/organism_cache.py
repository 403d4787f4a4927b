"""The model organism, shared between workspaces like the bundled model it is built from.

Building the organism is the slowest stage of a small experiment on a laptop, and its result depends only
on its stage key (the target, the ``organism`` settings, the seed and the packaged data). So when the target
is the bundled model (or ``organism.shared_cache`` says so), the finished stage's files (the training data,
the merged weights, the training log and the stage result) are published to ``<cache>/organisms/<key>/``
and a later workspace with the same key copies them instead of training again. A published folder is
complete or absent: it is written under a temporary name and renamed, and a marker file is written last.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from teachwhy.experiment.stages import StageContext
from teachwhy.models.embedded import cache_dir

_COMPLETE = ".teachwhy-complete"
_RESULT = "result.json"
# the result keys that are paths inside the stage folder (stored relative to it in the cache)
_PATH_KEYS = ("file", "model", "log")


def organism_cache_dir(key: str) -> Path:
    return cache_dir() / "organisms" / key


def restore(ctx: StageContext) -> dict[str, Any] | None:
    """Copy a published organism into the stage folder; its result (workspace-relative paths), or ``None``."""
    source = organism_cache_dir(ctx.key)
    if not (source / _COMPLETE).exists():
        return None
    stored = json.loads((source / _RESULT).read_text(encoding="utf-8"))
    for entry in source.iterdir():
        if entry.name in (_COMPLETE, _RESULT):
            continue
        target = ctx.dir / entry.name
        if target.exists():
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        if entry.is_dir():
            shutil.copytree(entry, target)
        else:
            shutil.copy2(entry, target)
    result: dict[str, Any] = dict(stored)
    for name in _PATH_KEYS:
        if name in stored:
            result[name] = ctx.relative(ctx.dir / stored[name])
    result["shared_cache"] = str(source)
    return result


def publish(ctx: StageContext, result: dict[str, Any]) -> None:
    """Publish a finished organism stage (best effort: a cache that cannot be written is skipped)."""
    destination = organism_cache_dir(ctx.key)
    if (destination / _COMPLETE).exists():
        return
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{ctx.key}-", dir=destination.parent))
    except OSError:
        return
    try:
        stored = dict(result)
        for name in _PATH_KEYS:
            if name not in result:
                continue
            inside = os.path.relpath(ctx.workspace / result[name], ctx.dir)
            stored[name] = inside
            source = ctx.dir / inside
            target = staging / inside
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, target)
            else:
                shutil.copy2(source, target)
        (staging / _RESULT).write_text(json.dumps(stored, indent=2), encoding="utf-8")
        (staging / _COMPLETE).write_text("", encoding="utf-8")
        os.replace(staging, destination)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
