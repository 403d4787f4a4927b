"""Local model folders loaded once per process and shared by every Inspect model that uses them.

Several roles (generator, target, judge, auditor) often name the same model; they share one copy of the
weights and one :class:`~teachwhy.models.batching.ContinuousBatcher`, so their requests batch together
instead of competing for the CPU. Each user holds a reference; the last one to let go stops the worker.
All workers are stopped cleanly when the interpreter exits.
"""

from __future__ import annotations

import atexit
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from teachwhy.errors import UserError
from teachwhy.models.embedded import EMBEDDED_NAME, materialise_embedded

DTYPES = ("float32", "bfloat16", "float16", "int8")
"""Weights' types the engine loads; ``int8``: weight-only, bfloat16 compute (see ``models/quantize.py``)."""


@dataclass
class LoadedModel:
    """A model folder's weights, tokenizer and batcher, shared by reference count."""

    folder: Path
    tokenizer: Any  # used by callers to render and encode prompts (under ``encode_lock``)
    batcher: Any  # ContinuousBatcher; typed loosely so importing this module does not import torch
    context_window: int
    encode_lock: threading.Lock = field(default_factory=threading.Lock)
    users: int = 0


_LOCK = threading.Lock()
_LOADED: dict[tuple[str, str, str, int, int], LoadedModel] = {}


def model_folder(name: str) -> Path:
    """The folder for ``embedded/<name>``: the bundled model, or a local Hugging Face model folder.

    Raises:
        UserError: ``name`` is not the bundled model and not a folder holding ``config.json``.
    """
    if name == EMBEDDED_NAME:
        return materialise_embedded()
    folder = Path(name).expanduser()
    if not folder.is_dir():
        raise UserError(
            f"embedded/{name}: no such model folder (expected embedded/{EMBEDDED_NAME} or "
            "embedded/<path to a local Hugging Face model folder>)"
        )
    if not (folder / "config.json").is_file():
        raise UserError(f"embedded/{name}: not a model folder (it has no config.json)")
    if not any(
        (folder / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")
    ):
        raise UserError(f"embedded/{name}: the model folder has no tokenizer files")
    return folder.resolve()


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def acquire(
    folder: Path, *, device: str, dtype: str, max_batch: int, prefix_cache_mb: int = 0
) -> LoadedModel:
    """Load ``folder`` (or reuse it if loaded with the same settings) and take a reference to it."""
    if dtype not in DTYPES:
        raise UserError(f"embedded: dtype must be one of {', '.join(DTYPES)}, got '{dtype}'", key="dtype")
    key = (str(folder), device, dtype, max_batch, prefix_cache_mb)
    with _LOCK:
        loaded = _LOADED.get(key)
        if loaded is None or not loaded.batcher.alive:
            loaded = _load(
                folder, device=device, dtype=dtype, max_batch=max_batch, prefix_cache_mb=prefix_cache_mb
            )
            _LOADED[key] = loaded
        loaded.users += 1
        return loaded


def release(loaded: LoadedModel) -> None:
    """Drop a reference; the last one stops the worker and frees the weights."""
    with _LOCK:
        loaded.users -= 1
        if loaded.users > 0:
            return
        for key, value in list(_LOADED.items()):
            if value is loaded:
                del _LOADED[key]
    loaded.batcher.close()


@atexit.register
def _close_all() -> None:
    with _LOCK:
        loaded = list(_LOADED.values())
        _LOADED.clear()
    for model in loaded:
        model.batcher.close()


def _load(folder: Path, *, device: str, dtype: str, max_batch: int, prefix_cache_mb: int) -> LoadedModel:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from teachwhy.models.batching import ContinuousBatcher

    try:
        model: Any = AutoModelForCausalLM.from_pretrained(
            folder, dtype=torch.float32 if dtype == "int8" else getattr(torch, dtype), device_map=device
        )
        worker_tokenizer = AutoTokenizer.from_pretrained(folder)
        tokenizer = AutoTokenizer.from_pretrained(folder)
    except (OSError, ValueError, KeyError) as e:
        raise UserError(
            f"embedded/{folder}: cannot load the model folder ({' '.join(str(e).split())})"
        ) from e
    model.eval()
    if dtype == "int8":
        from teachwhy.models.quantize import quantize_weights_int8

        quantize_weights_int8(model)
    stop_ids = _stop_token_ids(model, tokenizer)
    context = int(getattr(model.config.get_text_config(decoder=True), "max_position_embeddings", 0) or 4096)
    batcher = ContinuousBatcher(
        model,
        worker_tokenizer,
        max_batch=max_batch,
        stop_token_ids=stop_ids,
        context_window=context,
        prefix_cache_bytes=prefix_cache_mb * 2**20,
        name=f"teachwhy-embedded-{folder.name}",
    )
    return LoadedModel(folder=folder, tokenizer=tokenizer, batcher=batcher, context_window=context)


def _stop_token_ids(model: Any, tokenizer: Any) -> set[int]:
    ids: set[int] = set()
    for source in (getattr(model, "generation_config", None), model.config):
        value = getattr(source, "eos_token_id", None) if source is not None else None
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list | tuple):
            ids.update(int(v) for v in value)
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    return ids
