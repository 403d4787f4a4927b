"""``train_model``: fine-tune the target on training records, stage by stage, resumably, with merged
checkpoints.

A run's output directory holds everything about it::

    run.json            what was trained (model, data hashes, settings): a resume must match it
    train_log.jsonl     one line per optimizer step (loss, learning rate, tokens per source, tokens/s)
    checkpoints/        step-000050/ … merged model folders, every ``save_steps`` and at the end of each stage
    trainer/<stage>/    the trainer's resumable states, sharding.json (how each process held the model), and
                        stage_complete.json once a stage has finished
    result.json         written last: the run is finished

Stages run in order and each starts from where the previous one ended (the same LoRA adapter, or the fully
fine-tuned weights), so a killed run, started again with ``resume=True``, skips finished stages and
continues the
interrupted one from its last complete trainer checkpoint.

Under ``accelerate launch`` every process runs this same function. The distributed setup comes first (TRL's
config creates the process group and, with DeepSpeed, the ZeRO-3 context), then the model is loaded, so
ZeRO-3 partitions it while loading, and under FSDP with ``fsdp_cpu_ram_efficient_loading`` only rank 0 reads
the weights (the others build the model empty and receive rank 0's values as it is sharded; see
:mod:`teachwhy.train.sharding`, which also turns FSDP on for CPU processes).
Every file decision (is ``out_dir`` a run to resume, which stages are done) is made by all ranks on the same
files before rank 0 writes anything, and ranks meet at a barrier after each write rank 0 makes alone.
"""

from __future__ import annotations

import gc
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers import AutoTokenizer, PreTrainedTokenizerBase, TrainerCallback
from transformers.trainer_callback import PrinterCallback, ProgressCallback

from teachwhy.config import RoleModel, TrainConfig, TrainStage
from teachwhy.errors import UserError
from teachwhy.storage import atomic_write_json, content_hash, file_hash, write_jsonl
from teachwhy.train.callbacks import CheckpointCadence, RichProgress, TokenCounter, TrainingLog, read_log
from teachwhy.train.checkpoints import (
    Checkpoint,
    checkpoint_dir,
    list_checkpoints,
    mark_complete,
    remove_incomplete,
    rotate,
    save_merged,
    trainer_checkpoints,
)
from teachwhy.train.packing import RowCollator, pack_examples, rows_dataset, single_rows
from teachwhy.train.records import load_records
from teachwhy.train.sharding import ShardingRecord, weights_from_rank_zero
from teachwhy.train.tokenize import Example, tokenize_records
from teachwhy.train.trainer import SourceCountingSFTTrainer, load_model, peft_config, sft_config

LOG_NAME = "train_log.jsonl"
STAGE_COMPLETE = "stage_complete.json"
_STAGE_FORMATS = {"documents": {"document"}, "chat": {"chat"}, "mixed": {"document", "chat"}}


@dataclass(frozen=True)
class TrainResult:
    """What a finished training run produced.

    Attributes:
        out_dir: the run's output directory.
        checkpoints: merged model folders by step (the last one is the final model).
        steps: optimizer steps over all stages.
        log_path: the per-step training log (JSONL).
        tokens_by_source: training tokens consumed per data source (``kind``), epochs included.
        skipped_stages: stages that had no records of their kind.
        too_long: ids of conversations longer than ``max_length``, left out of training.
        split_documents: documents longer than ``max_length``, trained as several chunks.
    """

    out_dir: Path
    checkpoints: tuple[Checkpoint, ...]
    steps: int
    log_path: Path
    tokens_by_source: dict[str, int] = field(default_factory=dict)
    skipped_stages: tuple[str, ...] = ()
    too_long: tuple[str, ...] = ()
    split_documents: int = 0

    @property
    def final(self) -> Checkpoint:
        """The checkpoint saved at the end of the last stage."""
        return self.checkpoints[-1]

    def to_json(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "checkpoints": [
                {"step": c.step, "stage": c.stage, "path": str(c.path), "tokens_seen": c.tokens_seen}
                for c in self.checkpoints
            ],
            "log_path": str(self.log_path),
            "tokens_by_source": self.tokens_by_source,
            "skipped_stages": list(self.skipped_stages),
            "too_long": list(self.too_long),
            "split_documents": self.split_documents,
        }

    @classmethod
    def load(cls, out_dir: Path) -> TrainResult:
        """Read a finished run's ``result.json`` (checkpoint paths are re-rooted at ``out_dir``)."""
        data = json.loads((out_dir / "result.json").read_text(encoding="utf-8"))
        return cls(
            out_dir=out_dir,
            checkpoints=tuple(list_checkpoints(out_dir)),
            steps=data["steps"],
            log_path=out_dir / LOG_NAME,
            tokens_by_source=data["tokens_by_source"],
            skipped_stages=tuple(data["skipped_stages"]),
            too_long=tuple(data["too_long"]),
            split_documents=data["split_documents"],
        )


def resolve_target_path(role: RoleModel, *, key: str = "models.target") -> str:
    """The weights to fine-tune for a target model string (see :func:`teachwhy.models.roles.open_weights`).

    Raises:
        UserError: the provider serves closed weights (an API) that cannot be fine-tuned here, or
            ``hf/local`` has no ``args.model_path``.
    """
    from teachwhy.models.roles import open_weights

    if role.model == "hf/local" and not role.args.get("model_path"):
        raise UserError("hf/local needs args.model_path (the model folder)", key=key)
    weights = open_weights(role)
    if weights is None:
        raise UserError(
            f"'{role.model}' cannot be fine-tuned: training needs open weights "
            "(embedded, embedded/<folder>, hf/<model id or folder>, vllm/<model id or folder>)",
            key=key,
        )
    return weights


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def _wait_for_everyone() -> None:
    """A barrier across the training processes (nothing to wait for in a single process)."""
    from accelerate import PartialState

    if PartialState._shared_state:  # set up by the trainer's config (see _distributed_setup)
        PartialState().wait_for_everyone()


def _distributed_setup(config: TrainConfig, out_dir: Path) -> None:
    """Create the process group (and, under DeepSpeed, the ZeRO-3 context) the way the trainer will.

    TRL's config sets up the distributed state with the trainer's backend and timeout; doing it here, before
    any file is read or written and before a model is loaded, lets every rank meet at barriers from the start.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        _ = sft_config(config, config.stages[0], output_dir=out_dir / "trainer").device


def _stage_examples(stage: TrainStage, examples: Sequence[Example]) -> list[Example]:
    return [e for e in examples if e.format in _STAGE_FORMATS[stage.kind]]


def _prepare_out_dir(out_dir: Path, fingerprint: dict[str, Any], *, resume: bool) -> bool:
    """Check ``out_dir`` against ``fingerprint``; returns True when the run there is already finished.

    Every rank checks the folder as it was before this call; rank 0 then writes ``run.json`` while the others
    wait, so no rank mistakes the new ``run.json`` for an earlier run.
    """
    try:
        finished = _check_out_dir(out_dir, fingerprint, resume=resume)
    finally:
        _wait_for_everyone()  # all ranks raise the same UserError, or all go on
    if finished is None:
        if _is_main_process():
            atomic_write_json(out_dir / "run.json", fingerprint)
        _wait_for_everyone()
        return False
    return finished


def _check_out_dir(out_dir: Path, fingerprint: dict[str, Any], *, resume: bool) -> bool | None:
    """True: a finished run to return; False: a run to resume; None: a new run (``run.json`` to write)."""
    run_file = out_dir / "run.json"
    if out_dir.exists() and any(out_dir.iterdir()):
        if not resume:
            raise UserError(
                "already holds a training run; resume it (--resume) or choose another output folder",
                file=out_dir,
            )
        if not run_file.exists():
            raise UserError(
                "is not empty and is not a teachwhy training run; choose another output folder", file=out_dir
            )
        previous = json.loads(run_file.read_text(encoding="utf-8"))
        if previous.get("fingerprint") != fingerprint["fingerprint"]:
            raise UserError(
                "was trained from a different model, data or settings; cannot resume it", file=run_file
            )
        return (out_dir / "result.json").exists()
    return None


def _load_tokenizer(model: str) -> PreTrainedTokenizerBase:
    tokenizer: PreTrainedTokenizerBase = AutoTokenizer.from_pretrained(model)
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise UserError(
                f"the tokenizer of {model} has neither a pad nor an end-of-sequence token",
                key="models.target",
            )
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _trim_log(log_path: Path, keep_through: int) -> dict[str, int]:
    """Drop log lines after step ``keep_through`` (they will be trained again); return the token counts
    there."""
    records = read_log(log_path)
    kept = [r for r in records if r["step"] <= keep_through]
    if len(kept) != len(records) and _is_main_process():
        write_jsonl(log_path, kept)
    return dict(kept[-1]["tokens_by_source"]) if kept else {}


def train_model(
    *,
    model: str | Path,
    data: Sequence[str | Path],
    out_dir: str | Path,
    config: TrainConfig,
    resume: bool = False,
    progress: bool = True,
    callbacks: Sequence[TrainerCallback] = (),
    pad_to_max_length: bool = False,
) -> TrainResult:
    """Fine-tune ``model`` on the JSONL training records in ``data`` following ``config``'s stages.

    Args:
        model: a Hugging Face model folder or hub id (see :func:`resolve_target_path`).
        data: JSONL files of records with ``text`` (documents) or ``messages`` (chat), ``id`` and ``kind``.
        out_dir: where checkpoints, the log and trainer states are written (see the module docstring).
        config: the training settings (the experiment's ``train`` block or an arm's).
        resume: continue the run already in ``out_dir``; a finished run is returned as it is.
        progress: show a progress bar.
        callbacks: extra transformers ``TrainerCallback`` objects, added to every stage's trainer.
        pad_to_max_length: without packing, pad every row to ``max_length`` (the benchmark's baseline).

    Raises:
        UserError: bad records, no stage has data, or ``out_dir`` holds another run.
    """
    out_dir = Path(out_dir)
    model = str(Path(model).resolve()) if Path(model).exists() else str(model)
    records = load_records(data)
    fingerprint = {
        "fingerprint": content_hash(
            model, [file_hash(p) for p in data], config.training_settings(), pad_to_max_length
        ),
        "model": model,
        "data": [str(p) for p in data],
        "config": config.model_dump(mode="json"),
    }
    _distributed_setup(config, out_dir)
    if _prepare_out_dir(out_dir, fingerprint, resume=resume):
        return TrainResult.load(out_dir)

    tokenizer = _load_tokenizer(model)
    tokenized = tokenize_records(records, tokenizer, max_length=config.max_length)
    sources = sorted({e.source for e in tokenized.examples})
    if not any(_stage_examples(stage, tokenized.examples) for stage in config.stages):
        kinds = ", ".join(s.kind for s in config.stages)
        if tokenized.too_long:
            raise UserError(
                f"all {len(tokenized.too_long)} conversations are longer than max_length="
                f"{config.max_length} tokens and were left out; raise train.max_length",
                key="train.max_length",
            )
        raise UserError(
            f"none of the training stages ({kinds}) has records of its kind in the data", key="--data"
        )

    log_path = out_dir / LOG_NAME
    offset = 0
    previous_final: Path | None = None
    skipped: list[str] = []
    for stage in config.stages:
        examples = _stage_examples(stage, tokenized.examples)
        if not examples:
            skipped.append(stage.name)
            continue
        stage_dir = out_dir / "trainer" / stage.name
        done_file = stage_dir / STAGE_COMPLETE
        if done_file.exists():
            done = json.loads(done_file.read_text(encoding="utf-8"))
            offset, previous_final = done["global_step"], stage_dir / done["final"]
            continue
        complete = trainer_checkpoints(stage_dir)
        resume_from = complete[-1] if complete else None
        resumed_step = int(resume_from.name.split("-")[1]) if resume_from else 0
        counter = TokenCounter(sources, _trim_log(log_path, offset + resumed_step))
        if _is_main_process():
            remove_incomplete(stage_dir)
        _wait_for_everyone()  # the folder and the log are as rank 0 left them before anyone trains
        stage_steps = _train_stage(
            stage,
            examples=examples,
            config=config,
            base_model=model,
            previous_final=previous_final,
            stage_dir=stage_dir,
            resume_from=resume_from,
            out_dir=out_dir,
            offset=offset,
            tokenizer=tokenizer,
            counter=counter,
            sources=sources,
            progress=progress,
            callbacks=callbacks,
            pad_to_max_length=pad_to_max_length,
        )
        final = stage_dir / f"checkpoint-{stage_steps}"
        if _is_main_process():
            atomic_write_json(done_file, {"global_step": offset + stage_steps, "final": final.name})
        offset, previous_final = offset + stage_steps, final

    _wait_for_everyone()  # the last log lines are written
    log = read_log(log_path)
    result = TrainResult(
        out_dir=out_dir,
        checkpoints=tuple(list_checkpoints(out_dir)),
        steps=offset,
        log_path=log_path,
        tokens_by_source=dict(log[-1]["tokens_by_source"]) if log else {},
        skipped_stages=tuple(skipped),
        too_long=tuple(tokenized.too_long),
        split_documents=tokenized.split_documents,
    )
    if _is_main_process():
        atomic_write_json(out_dir / "result.json", result.to_json())
    _wait_for_everyone()  # no rank returns before the run is recorded as finished
    return result


def _train_stage(
    stage: TrainStage,
    *,
    examples: list[Example],
    config: TrainConfig,
    base_model: str,
    previous_final: Path | None,
    stage_dir: Path,
    resume_from: Path | None,
    out_dir: Path,
    offset: int,
    tokenizer: PreTrainedTokenizerBase,
    counter: TokenCounter,
    sources: list[str],
    progress: bool,
    callbacks: Sequence[TrainerCallback],
    pad_to_max_length: bool,
) -> int:
    """Train one stage (resuming from ``resume_from`` if given); returns the stage's optimizer steps."""
    rows = (
        pack_examples(examples, max_length=config.max_length, seed=config.seed)
        if config.packing
        else single_rows(examples)
    )
    # the trainer's config first: it sets up the distributed state (ZeRO-3 context, FSDP) the model loads into
    args = sft_config(config, stage, output_dir=stage_dir)
    _ = args.device
    shapes_only = weights_from_rank_zero()  # FSDP fills this process's shards from rank 0's weights
    peft = None
    if config.method == "lora":
        net: Any = load_model(base_model, config, shapes_only=shapes_only)
        if previous_final is not None:  # continue the adapter of the previous stage
            from peft import PeftModel

            net = PeftModel.from_pretrained(net, previous_final, is_trainable=True)
        else:
            peft = peft_config(config)
    else:
        net = load_model(previous_final or base_model, config, shapes_only=shapes_only)

    def after_save(trainer_checkpoint: Path, stage_step: int) -> None:
        step = offset + stage_step
        meta = {
            "step": step,
            "stage": stage.name,
            "stage_step": stage_step,
            "tokens_seen": counter.total,
            "tokens_by_source": counter.snapshot(),
            "base_model": base_model,
            "method": config.method,
        }
        save_merged(
            base_model=Path(base_model),
            trainer_checkpoint=trainer_checkpoint,
            target=checkpoint_dir(out_dir, step),
            method=config.method,
            tokenizer=tokenizer,
            meta=meta,
        )
        mark_complete(trainer_checkpoint)
        rotate(stage_dir, keep=config.keep_trainer_checkpoints)

    stage_callbacks: list[TrainerCallback] = [
        TrainingLog(out_dir / LOG_NAME, stage=stage.name, offset=offset, counter=counter),
        ShardingRecord(weights_from_rank_zero=shapes_only),
        CheckpointCadence(
            save_steps=config.save_steps, offset=offset, after_save=after_save, barrier=_wait_for_everyone
        ),
        *callbacks,
    ]
    if progress:
        stage_callbacks.append(RichProgress(stage=stage.name, counter=counter))
    trainer = SourceCountingSFTTrainer(
        model=net,
        args=args,
        data_collator=RowCollator(
            pad_token_id=int(tokenizer.pad_token_id), pad_to=config.max_length if pad_to_max_length else None
        ),
        train_dataset=rows_dataset(rows, sources),
        processing_class=tokenizer,
        peft_config=peft,
        callbacks=stage_callbacks,
        counter=counter,
    )
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    steps = int(trainer.state.global_step)
    trainer.accelerator.wait_for_everyone()
    del trainer, net
    gc.collect()
    return steps
