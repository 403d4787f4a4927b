"""Checkpoints an evaluation can load directly, and the trainer states a killed run resumes from.

Two kinds of folders live under a training run's output directory:

* ``trainer/<stage>/checkpoint-<n>``: the trainer's own state (adapter or weights, optimizer, scheduler,
RNG) for
  resuming. A kill can interrupt the trainer while it writes one, so a folder only counts once
  ``.teachwhy-complete`` is written into it, which happens after its merged checkpoint exists.
* ``checkpoints/step-<global step>``: a plain Hugging Face model folder (safetensors + tokenizer) with the
LoRA
  adapter merged into the weights, usable as ``hf/…`` in Inspect or served by vLLM. The adapter itself is
  kept in
  its ``adapter/`` subfolder for providers that serve LoRA. ``checkpoint.json`` records the step, stage and
  tokens.
  It is built under a temporary name and renamed into place, so it is either complete or absent.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from transformers import AutoModelForCausalLM, PreTrainedTokenizerBase

from teachwhy.storage import atomic_write_json

COMPLETE_MARKER = ".teachwhy-complete"
CHECKPOINT_META = "checkpoint.json"
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin")
_TRAINER_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


@dataclass(frozen=True)
class Checkpoint:
    """A merged model folder saved during training.

    Attributes:
        step: the optimizer step across all stages (stage two continues the count of stage one).
        stage: the stage it was saved in.
        path: the model folder (load it with Inspect ``hf/local`` + ``model_path``, or serve it with vLLM).
        tokens_seen: training tokens consumed up to this step, all sources together.
    """

    step: int
    stage: str
    path: Path
    tokens_seen: int


def checkpoint_dir(out_dir: Path, step: int) -> Path:
    return out_dir / "checkpoints" / f"step-{step:06d}"


def list_checkpoints(out_dir: Path) -> list[Checkpoint]:
    """Every complete merged checkpoint of a run, by step."""
    found: list[Checkpoint] = []
    root = out_dir / "checkpoints"
    if not root.is_dir():
        return found
    for folder in root.iterdir():
        meta_path = folder / CHECKPOINT_META
        if folder.name.startswith("step-") and meta_path.is_file():
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            found.append(Checkpoint(meta["step"], meta["stage"], folder, meta["tokens_seen"]))
    return sorted(found, key=lambda c: c.step)


def trainer_checkpoints(stage_dir: Path, *, complete_only: bool = True) -> list[Path]:
    """The trainer's checkpoint folders in a stage folder, oldest first."""
    if not stage_dir.is_dir():
        return []
    found = []
    for folder in stage_dir.iterdir():
        match = _TRAINER_CHECKPOINT.match(folder.name)
        if match and folder.is_dir() and (not complete_only or (folder / COMPLETE_MARKER).exists()):
            found.append((int(match.group(1)), folder))
    return [folder for _, folder in sorted(found)]


def remove_incomplete(stage_dir: Path) -> None:
    """Delete trainer checkpoints a kill left half-written (no completion marker)."""
    for folder in trainer_checkpoints(stage_dir, complete_only=False):
        if not (folder / COMPLETE_MARKER).exists():
            shutil.rmtree(folder, ignore_errors=True)


def rotate(stage_dir: Path, *, keep: int) -> None:
    """Keep only the newest ``keep`` complete trainer checkpoints of a stage."""
    complete = trainer_checkpoints(stage_dir)
    for folder in complete[:-keep]:
        shutil.rmtree(folder, ignore_errors=True)


def mark_complete(trainer_checkpoint: Path) -> None:
    (trainer_checkpoint / COMPLETE_MARKER).write_text("ok\n", encoding="utf-8")


def save_merged(
    *,
    base_model: Path,
    trainer_checkpoint: Path,
    target: Path,
    method: Literal["lora", "full"],
    tokenizer: PreTrainedTokenizerBase,
    meta: dict[str, Any],
) -> Path:
    """Write a loadable full-model folder for one trainer checkpoint, atomically.

    For LoRA the base model is loaded fresh and the adapter saved in ``trainer_checkpoint`` is merged into
    it, in
    the base model's own dtype; for full fine-tuning the checkpoint's weights are re-saved without the
    optimizer.
    """
    # building the merged model draws from the global RNG (adapter layers are initialised before loading);
    # forking it keeps training after a save identical to training resumed from that save
    with torch.random.fork_rng(devices=[]), _outside_zero3():
        return _save_merged(base_model, trainer_checkpoint, target, method, tokenizer, meta)


@contextmanager
def _outside_zero3() -> Iterator[None]:
    """Load plain, whole models while a DeepSpeed ZeRO-3 run is active.

    Under ZeRO-3, transformers partitions every model it loads across the processes; the merge runs on rank 0
    alone and needs the whole model on CPU, so the ZeRO-3 setting is lifted while it loads and restored after.
    """
    from transformers.integrations import deepspeed

    saved = deepspeed._hf_deepspeed_config_weak_ref
    deepspeed._hf_deepspeed_config_weak_ref = None
    try:
        yield
    finally:
        deepspeed._hf_deepspeed_config_weak_ref = saved


def _save_merged(
    base_model: Path,
    trainer_checkpoint: Path,
    target: Path,
    method: Literal["lora", "full"],
    tokenizer: PreTrainedTokenizerBase,
    meta: dict[str, Any],
) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.partial-"))
    try:
        if method == "lora":
            from peft import PeftModel

            base = AutoModelForCausalLM.from_pretrained(base_model, dtype="auto", device_map={"": "cpu"})
            model = PeftModel.from_pretrained(base, trainer_checkpoint).merge_and_unload()
            adapter_dir = staging / "adapter"
            adapter_dir.mkdir()
            for name in ADAPTER_FILES:
                if (trainer_checkpoint / name).exists():
                    shutil.copy2(trainer_checkpoint / name, adapter_dir / name)
        else:
            model = AutoModelForCausalLM.from_pretrained(
                trainer_checkpoint, dtype="auto", device_map={"": "cpu"}
            )
        with torch.no_grad():
            model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        atomic_write_json(staging / CHECKPOINT_META, meta)
        # temporary files are private; a model folder is read by other tools and users
        staging.chmod(0o755)
        (staging / CHECKPOINT_META).chmod(0o644)
        if target.exists():  # a redo after a resume: the new folder replaces the old one
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target
