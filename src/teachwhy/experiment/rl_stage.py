"""The ``rl`` stage of an arm: GRPO after its SFT, and the evaluation of every RL checkpoint.

When an arm has an ``rl`` block, the stage ``rl/<arm>`` starts from the merged checkpoint saved at the end of
the training stage ``rl.after`` (default: the arm's last stage; an arm without data starts from the target, or
from the organism for ``start_from: organism``), trains with :func:`teachwhy.rl.run.train_rl` on the prompts
of the harmlessness environments (augmented at the configured rates), rewarded by the ``judge`` role against
the rubric, and writes merged checkpoints whose steps continue the SFT count. Each of them is evaluated like
an SFT checkpoint (``eval/<arm>/rl/step-<n>``, plus the assessment and adherence when enabled); their results
carry ``phase: rl`` and ``rl_step``, so the summary and the report tell RL steps from SFT steps.

The stage's key hashes the RL settings, the judge role, the constitution, the rubric and prompt files'
content, the shipped environments, the arm's LoRA and precision settings and the stage it starts after
(through ``after``), so a change to any of them re-runs RL and its evaluations and nothing else.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from teachwhy.config import ArmConfig, ExperimentConfig
from teachwhy.errors import UserError
from teachwhy.experiment.stages import StageContext
from teachwhy.storage import content_hash, file_hash

if TYPE_CHECKING:
    from teachwhy.experiment.pipeline import ExperimentPipeline

RL_PHASE = "rl"


def start_stage(config: ExperimentConfig, arm: ArmConfig) -> str | None:
    """The training stage RL starts after (``None``: the arm has no data and starts from its base model).

    Raises:
        UserError: ``rl.after`` names no training stage of the arm, or the arm has no data to train on.
    """
    assert arm.rl is not None
    key = f"arms.{arm.name}.rl.after"
    if not arm.data.sources():
        if arm.rl.after is not None:
            raise UserError(
                "an arm without data has no training stage to start after", file=config.source, key=key
            )
        return None
    stages = [s.name for s in config.train_for(arm).stages]
    after = arm.rl.after or stages[-1]
    if after not in stages:
        raise UserError(
            f"names no training stage of the arm ({', '.join(stages)})", file=config.source, key=key
        )
    return after


def check_rl_arms(config: ExperimentConfig) -> None:
    """Check every arm's ``rl.after`` before any stage runs (a typo fails at once, not after training)."""
    for arm in config.arms:
        if arm.rl is not None:
            start_stage(config, arm)


def _inputs_hash(pipeline: ExperimentPipeline, arm: ArmConfig) -> dict[str, Any]:
    assert arm.rl is not None
    config = pipeline.config
    settings = arm.rl
    files: list[str] = []
    for i, path in enumerate(settings.prompt_files):
        resolved = config.resolve(path)
        if not resolved.exists():
            raise UserError(
                "prompt file not found", file=config.source, key=f"arms.{arm.name}.rl.prompt_files[{i}]"
            )
        files.append(_path_hash(resolved))
    rubric = None
    if settings.rubric is not None:
        resolved = config.resolve(settings.rubric)
        if not resolved.is_file():
            raise UserError("rubric file not found", file=config.source, key=f"arms.{arm.name}.rl.rubric")
        rubric = file_hash(resolved)
    return {
        "rl": settings.model_dump(mode="json"),
        "train": config.train_for(arm).training_settings(),
        "judge": config.models.judge.model_dump(mode="json"),
        "constitution": pipeline.constitution.sha256,
        "prompt_files": files,
        "rubric": rubric,
        "package_data": pipeline._data_hashes["rl"],
        "start_from": arm.start_from,
    }


def _path_hash(path: Path) -> str:
    if path.is_file():
        return file_hash(path)
    return content_hash(
        *[[str(p.relative_to(path)), file_hash(p)] for p in sorted(path.rglob("*")) if p.is_file()]
    )


def rl_stage(
    pipeline: ExperimentPipeline,
    arm: ArmConfig,
    train: dict[str, Any] | None,
    organism: dict[str, Any] | None,
) -> dict[str, Any] | None:
    """Run (or recall) the arm's RL; ``None`` in a dry run that has not finished it."""
    assert arm.rl is not None
    settings = arm.rl
    config = pipeline.config
    after_stage = start_stage(config, arm)
    inputs = _inputs_hash(pipeline, arm)
    inputs["after"] = after_stage
    after: list[dict[str, Any] | None] = []
    if after_stage is not None:
        after.append(train)
    else:
        inputs["target"] = config.models.target.model_dump(mode="json")
        if arm.start_from == "organism":
            after.append(organism)

    def work(ctx: StageContext) -> dict[str, Any]:
        from teachwhy.models import role_model
        from teachwhy.rl.environments import (
            augment_prompts,
            load_builtin_prompts,
            load_prompt_file,
            select_prompts,
        )
        from teachwhy.rl.reward import REWARDS_FILE, ConstitutionReward, load_rubric
        from teachwhy.rl.run import train_rl
        from teachwhy.train.run import resolve_target_path

        start, step, tokens = _start(pipeline, arm, after_stage, train, organism, resolve_target_path)
        train_config = config.train_for(arm)
        seed = train_config.seed if settings.seed is None else settings.seed
        prompts = load_builtin_prompts() if settings.builtin_prompts else []
        for i, path in enumerate(settings.prompt_files):
            prompts += load_prompt_file(config.resolve(path), key=f"arms.{arm.name}.rl.prompt_files[{i}]")
        prompts = select_prompts(prompts, limit=settings.prompt_limit, seed=seed)
        prompts = augment_prompts(
            prompts,
            tool_rate=settings.tool_rate,
            system_prompt_rate=settings.system_prompt_rate,
            max_tools=settings.max_tools,
            seed=seed,
        )
        run_dir = ctx.dir / "run"
        reward = ConstitutionReward(
            judge=role_model(config, "judge", temperature=0.0),
            constitution=pipeline.constitution,
            rubric=load_rubric(config.resolve(settings.rubric) if settings.rubric else None),
            log_path=run_dir / REWARDS_FILE,
            default_principles=settings.principles,
            judge_max_tokens=settings.judge_max_tokens,
            max_completion_length=settings.max_completion_length,
            length_weight=settings.length_weight,
            target_words=settings.target_words,
            format_weight=settings.format_weight,
        )
        result = train_rl(
            model=start,
            prompts=prompts,
            reward=reward,
            out_dir=run_dir,
            settings=settings,
            train=train_config,
            step_offset=step,
            tokens_seen=tokens,
            resume=True,
        )
        return {
            "start_step": step,
            "after": after_stage,
            "steps": result.steps,
            "checkpoints": [
                {
                    "step": c.step,
                    "rl_step": c.step - step,
                    "path": ctx.relative(c.path),
                    "tokens_seen": c.tokens_seen,
                }
                for c in result.checkpoints
            ],
            "log": ctx.relative(result.log_path),
            "rewards": ctx.relative(run_dir / REWARDS_FILE),
            "judge_counts": result.judge_counts,
            "prompts": len(prompts),
            "augmented": sum(p.augmented for p in prompts),
        }

    detail = f"judge={config.models.judge.model} after={after_stage or 'the base model'}"
    return pipeline.runner.stage("rl", arm.name, inputs, work, after=after, detail=detail)


def _start(
    pipeline: ExperimentPipeline,
    arm: ArmConfig,
    after_stage: str | None,
    train: dict[str, Any] | None,
    organism: dict[str, Any] | None,
    resolve_target_path: Any,
) -> tuple[str, int, int]:
    """The model folder RL starts from, its global step and the SFT tokens behind it."""
    workspace = pipeline.workspace
    if after_stage is None:
        if arm.start_from == "organism":
            assert organism is not None
            return str((workspace / organism["model"]).resolve()), 0, 0
        return resolve_target_path(pipeline.config.models.target), 0, 0
    assert train is not None
    ends = []
    for c in train["checkpoints"]:
        meta = json.loads((workspace / c["path"] / "checkpoint.json").read_text(encoding="utf-8"))
        if meta["stage"] == after_stage:
            ends.append(c)
    if not ends:
        raise UserError(
            f"training stage '{after_stage}' had no data and saved no checkpoint to start RL from",
            file=pipeline.config.source,
            key=f"arms.{arm.name}.rl.after",
        )
    end = max(ends, key=lambda c: int(c["step"]))
    return str((workspace / end["path"]).resolve()), int(end["step"]), int(end["tokens_seen"])


def rl_checkpoint_evals(
    pipeline: ExperimentPipeline, arm: ArmConfig, rl: dict[str, Any] | None
) -> list[dict[str, Any] | None]:
    """The evaluation of every RL checkpoint (or the last, per ``eval.checkpoints``), marked ``phase: rl``."""
    from teachwhy.experiment.pipeline import _never

    if rl is None:
        return [pipeline.runner.stage("eval", f"{arm.name}/rl/checkpoints", {}, _never, after=[None])]
    checkpoints = rl["checkpoints"]
    if pipeline.config.eval.checkpoints == "last":
        checkpoints = checkpoints[-1:]
    out: list[dict[str, Any] | None] = []
    for c in checkpoints:
        result = pipeline._eval(
            f"{arm.name}/rl/step-{c['step']}",
            pipeline._checkpoint_model(c["path"]),
            step=c["step"],
            tokens_seen=c["tokens_seen"],
            after=[rl],
        )
        out.append(None if result is None else {**result, "phase": RL_PHASE, "rl_step": c["rl_step"]})
    return out


def rl_summary(rl: dict[str, Any]) -> dict[str, Any]:
    """What the summary shows about an arm's RL: where it started, its log, and the judge's statuses."""
    return {
        "after": rl["after"],
        "start_step": rl["start_step"],
        "steps": rl["steps"],
        "log": rl["log"],
        "rewards": rl["rewards"],
        "judge_counts": rl["judge_counts"],
        "prompts": rl["prompts"],
        "augmented": rl["augmented"],
    }
