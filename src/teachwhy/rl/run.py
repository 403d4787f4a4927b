"""``train_rl``: GRPO (TRL's GRPOTrainer) from an SFT'd model, resumably, with merged checkpoints.

A run's output directory::

    run.json            what is trained (model, prompts, settings, reward identity): a resume must match it
    prompts.jsonl       the prompts after augmentation (what the policy was asked)
    rl_log.jsonl        one line per step: reward, its spread, KL, loss, judge statuses, completion length
    rewards.jsonl       one line per judged completion (see teachwhy.rl.reward)
    checkpoints/        step-<global step>/ merged model folders every ``save_steps`` RL steps and at the end
    trainer/rl/         the trainer's resumable states (the SFT stages' layout)
    result.json         written last: the run is finished

Global steps continue the SFT run's count (``step_offset``), so an experiment's curves run on one axis;
each checkpoint's ``checkpoint.json`` also records its ``rl_step`` and ``stage: rl``.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoTokenizer,
    PreTrainedTokenizerBase,
    TrainerCallback,
    TrainerControl,
    TrainerState,
    TrainingArguments,
)
from transformers.trainer_callback import PrinterCallback, ProgressCallback

from teachwhy.config import LoraConfig, RlConfig, TrainConfig
from teachwhy.errors import UserError
from teachwhy.rl.environments import RlPrompt
from teachwhy.rl.reward import REWARDS_FILE, STATUSES
from teachwhy.storage import JsonlAppender, atomic_write_json, content_hash, read_jsonl, write_jsonl
from teachwhy.train.callbacks import CheckpointCadence, RichProgress, TokenCounter, read_log
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

STAGE = "rl"
LOG_NAME = "rl_log.jsonl"
RewardFunc = Callable[..., list[float | None]]
# the step metrics kept in rl_log.jsonl (GRPOTrainer's names)
_METRICS = (
    "reward",
    "reward_std",
    "kl",
    "loss",
    "entropy",
    "completions/mean_length",
    "completions/clipped_ratio",
)


@dataclass(frozen=True)
class RlResult:
    """What a finished RL run produced."""

    out_dir: Path
    checkpoints: tuple[Checkpoint, ...]
    steps: int
    step_offset: int
    log_path: Path
    judge_counts: dict[str, int]

    @property
    def final(self) -> Checkpoint:
        return self.checkpoints[-1]

    def to_json(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "step_offset": self.step_offset,
            "checkpoints": [
                {
                    "step": c.step,
                    "rl_step": c.step - self.step_offset,
                    "path": str(c.path),
                    "tokens_seen": c.tokens_seen,
                }
                for c in self.checkpoints
            ],
            "log_path": str(self.log_path),
            "judge_counts": self.judge_counts,
        }

    @classmethod
    def load(cls, out_dir: Path) -> RlResult:
        data = json.loads((out_dir / "result.json").read_text(encoding="utf-8"))
        return cls(
            out_dir=out_dir,
            checkpoints=tuple(list_checkpoints(out_dir)),
            steps=data["steps"],
            step_offset=data["step_offset"],
            log_path=out_dir / LOG_NAME,
            judge_counts=dict(data["judge_counts"]),
        )


class RlLog(TrainerCallback):
    """Appends one JSON line per GRPO step: the reward, its spread, KL, loss and the judge's statuses."""

    def __init__(self, path: Path, *, offset: int) -> None:
        self.path = path
        self.offset = offset

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        if not logs or "reward" not in logs or not state.is_world_process_zero:
            return
        record: dict[str, Any] = {
            "id": f"{STAGE}:{state.global_step}",
            "stage": STAGE,
            "step": self.offset + state.global_step,
            "rl_step": state.global_step,
            "learning_rate": logs.get("learning_rate"),
        }
        record.update({name: logs.get(name) for name in _METRICS})
        record["judge"] = {s: logs[f"judge/{s}"] for s in STATUSES if f"judge/{s}" in logs}
        with JsonlAppender(self.path) as log:
            log.append(record)


def grpo_config(settings: RlConfig, train: TrainConfig, *, output_dir: Path, seed: int) -> Any:
    """TRL's GRPOConfig for the settings (explicit about CPU, precision and saving, as the SFT stages are)."""
    from trl.trainer.grpo_config import GRPOConfig

    from teachwhy.train.trainer import use_bf16

    cuda = torch.cuda.is_available()
    trackers = train.report_to if isinstance(train.report_to, str) else [str(t) for t in train.report_to]
    return GRPOConfig(
        output_dir=str(output_dir),
        per_device_train_batch_size=settings.prompts_per_step * settings.num_generations,
        gradient_accumulation_steps=1,
        num_generations=settings.num_generations,
        max_completion_length=settings.max_completion_length,
        temperature=settings.temperature,
        beta=settings.beta,
        learning_rate=settings.learning_rate,
        lr_scheduler_type="constant",
        max_steps=settings.steps,
        max_grad_norm=train.max_grad_norm,
        mask_truncated_completions=settings.mask_truncated_completions,
        seed=seed,
        data_seed=seed,
        bf16=use_bf16(train),
        fp16=False,
        use_cpu=not cuda,
        activation_checkpointing=train.gradient_checkpointing,
        dataloader_pin_memory=cuda,
        logging_steps=1,
        save_strategy="no",  # CheckpointCadence decides when to save
        save_total_limit=None,
        report_to=trackers,
        disable_tqdm=True,
        use_vllm=settings.use_vllm,
        vllm_mode=settings.vllm_mode,
        vllm_gpu_memory_utilization=settings.vllm_gpu_memory_utilization,
    )


def prompts_dataset(prompts: Sequence[RlPrompt]) -> Any:
    """The prompts as a dataset GRPOTrainer reads: conversational ``prompt`` plus the reward's columns."""
    from datasets import Dataset

    return Dataset.from_list(
        [
            {
                "prompt": list(p.messages),
                "prompt_id": p.id,
                "environment": p.environment,
                "principles": list(p.principles),
                "augmented": p.augmented,
            }
            for p in prompts
        ]
    )


def train_rl(
    *,
    model: str | Path,
    prompts: Sequence[RlPrompt],
    reward: RewardFunc,
    out_dir: str | Path,
    settings: RlConfig,
    train: TrainConfig | None = None,
    step_offset: int = 0,
    tokens_seen: int = 0,
    resume: bool = False,
    progress: bool = True,
    callbacks: Sequence[TrainerCallback] = (),
) -> RlResult:
    """GRPO on ``prompts`` from the model folder ``model``, rewarded by ``reward``.

    Args:
        model: the SFT'd merged model folder (or any causal LM folder) the policy starts from.
        prompts: the prompts, already augmented (see :mod:`teachwhy.rl.environments`).
        reward: a GRPOTrainer reward function (:class:`teachwhy.rl.reward.ConstitutionReward`); ``None``
            rewards mean "no signal". Its ``identity()``, if it has one, is part of the run's fingerprint.
        out_dir: where the run is written (see the module docstring).
        settings: the arm's ``rl`` block.
        train: the arm's training settings (LoRA, precision, trackers); ``method`` unless ``settings.method``.
        step_offset: the global step of the starting checkpoint; RL checkpoints continue from it.
        tokens_seen: SFT tokens behind the starting checkpoint (recorded in every RL checkpoint).
        resume: continue the run in ``out_dir`` (a finished run is returned as it is).
        progress: show a progress bar.
        callbacks: extra transformers callbacks.

    Raises:
        UserError: no prompts, or ``out_dir`` holds another run.
    """
    from trl.trainer.grpo_trainer import GRPOTrainer

    from teachwhy.train.trainer import load_model, peft_config

    if not prompts:
        raise UserError("there are no RL prompts", key="rl")
    out_dir = Path(out_dir)
    train = train or TrainConfig(lora=LoraConfig())
    method = settings.method or train.method
    seed = train.seed if settings.seed is None else settings.seed
    model = str(Path(model).resolve()) if Path(model).exists() else str(model)
    identity = reward.identity() if hasattr(reward, "identity") else getattr(reward, "__name__", "reward")
    fingerprint = {
        "fingerprint": content_hash(
            model,
            [p.to_json() for p in prompts],
            settings.model_dump(mode="json"),
            train.training_settings(),
            identity,
            step_offset,
        ),
        "model": model,
        "settings": settings.model_dump(mode="json"),
        "reward": identity,
    }
    if _check_out_dir(out_dir, fingerprint, resume=resume):
        return RlResult.load(out_dir)
    atomic_write_json(out_dir / "run.json", fingerprint)
    write_jsonl(out_dir / "prompts.jsonl", [p.to_json() for p in prompts])

    stage_dir = out_dir / "trainer" / STAGE
    complete = trainer_checkpoints(stage_dir)
    resume_from = complete[-1] if complete else None
    resumed_step = int(resume_from.name.split("-")[1]) if resume_from else 0
    _trim(out_dir / LOG_NAME, "rl_step", resumed_step)
    _trim(out_dir / REWARDS_FILE, "step", resumed_step)
    remove_incomplete(stage_dir)

    tokenizer = _load_tokenizer(model)
    args = grpo_config(settings, train, output_dir=stage_dir, seed=seed)
    net: Any = load_model(model, train.model_copy(update={"method": method}))
    lora = peft_config(train) if method == "lora" else None

    def after_save(trainer_checkpoint: Path, rl_step: int) -> None:
        step = step_offset + rl_step
        meta = {
            "step": step,
            "stage": STAGE,
            "stage_step": rl_step,
            "rl_step": rl_step,
            "start_step": step_offset,
            "tokens_seen": tokens_seen,
            "base_model": model,
            "method": method,
        }
        save_merged(
            base_model=Path(model),
            trainer_checkpoint=trainer_checkpoint,
            target=checkpoint_dir(out_dir, step),
            method=method,
            tokenizer=tokenizer,
            meta=meta,
        )
        mark_complete(trainer_checkpoint)
        rotate(stage_dir, keep=settings.keep_trainer_checkpoints)

    trainer_callbacks: list[TrainerCallback] = [
        RlLog(out_dir / LOG_NAME, offset=step_offset),
        CheckpointCadence(save_steps=settings.save_steps, offset=0, after_save=after_save),
        *callbacks,
    ]
    if progress:
        trainer_callbacks.append(RichProgress(stage=STAGE, counter=TokenCounter([])))
    trainer = GRPOTrainer(
        model=net,
        reward_funcs=[reward],
        args=args,
        train_dataset=prompts_dataset(prompts),
        processing_class=tokenizer,
        peft_config=lora,
        callbacks=trainer_callbacks,
    )
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    steps = int(trainer.state.global_step)
    del trainer, net
    gc.collect()

    result = RlResult(
        out_dir=out_dir,
        checkpoints=tuple(list_checkpoints(out_dir)),
        steps=steps,
        step_offset=step_offset,
        log_path=out_dir / LOG_NAME,
        judge_counts=judge_counts(out_dir / REWARDS_FILE),
    )
    atomic_write_json(out_dir / "result.json", result.to_json())
    return result


def judge_counts(rewards_path: Path) -> dict[str, int]:
    """Judged completions per status (``ok``, ``refused``, ``unparseable``, ``cut_off``, ``error``)."""
    counts: dict[str, int] = dict.fromkeys(STATUSES, 0)
    for row in read_log(rewards_path):
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    return counts


def _trim(path: Path, key: str, keep_through: int) -> None:
    """Drop lines written after the step a resume restarts from (those steps run again)."""
    if not path.exists():
        return
    rows = read_log(path)
    kept = [r for r in rows if int(r[key]) <= keep_through]
    if len(kept) != len(rows):
        write_jsonl(path, kept)


def _check_out_dir(out_dir: Path, fingerprint: dict[str, Any], *, resume: bool) -> bool:
    """True: a finished run to return; False: a new run or one to resume."""
    run_file = out_dir / "run.json"
    if not (out_dir.exists() and any(out_dir.iterdir())):
        return False
    if not resume:
        raise UserError(
            "already holds an RL run; resume it (--resume) or choose another folder", file=out_dir
        )
    if not run_file.exists():
        raise UserError("is not empty and is not a teachwhy RL run; choose another folder", file=out_dir)
    previous = json.loads(run_file.read_text(encoding="utf-8"))
    if previous.get("fingerprint") != fingerprint["fingerprint"]:
        raise UserError(
            "was trained from a different model, prompts, reward or settings; cannot resume it", file=run_file
        )
    return (out_dir / "result.json").exists()


def _load_tokenizer(model: str) -> PreTrainedTokenizerBase:
    tokenizer: PreTrainedTokenizerBase = AutoTokenizer.from_pretrained(model)
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise UserError(
                f"the tokenizer of {model} has neither a pad nor an end-of-sequence token", key="rl"
            )
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def read_rewards(out_dir: Path) -> list[dict[str, Any]]:
    """Every judged completion of a run (``rewards.jsonl``)."""
    path = out_dir / REWARDS_FILE
    return read_jsonl(path) if path.exists() else []
