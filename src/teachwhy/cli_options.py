"""Options every command shares (`--config`, the role overrides) and the config loading they feed."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from teachwhy.config import ExperimentConfig, apply_role_overrides, load_config

ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="The experiment file.", show_default=True)]
GeneratorOption = Annotated[str | None, typer.Option("--generator", help="Override the generator model.")]
TargetOption = Annotated[str | None, typer.Option("--target", help="Override the target model.")]
JudgeOption = Annotated[str | None, typer.Option("--judge", help="Override the judge model.")]
AuditorOption = Annotated[str | None, typer.Option("--auditor", help="Override the auditor model.")]

DEFAULT_CONFIG = Path("teachwhy.yaml")


def load_experiment(
    config: Path,
    *,
    generator: str | None = None,
    target: str | None = None,
    judge: str | None = None,
    auditor: str | None = None,
) -> ExperimentConfig:
    """Load the experiment file and apply command-line role overrides."""
    loaded = load_config(config)
    overrides = {"generator": generator, "target": target, "judge": judge, "auditor": auditor}
    return apply_role_overrides(loaded, overrides)


def load_judge_settings(config: Path, judge: str | None) -> ExperimentConfig:
    """The experiment file with ``--judge`` applied, or the default roles and eval settings when there is no
    file (checking a judge or the instrument needs no experiment)."""
    if config.exists():
        return load_experiment(config, judge=judge)
    return apply_role_overrides(ExperimentConfig(), {"judge": judge})
