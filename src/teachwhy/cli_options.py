"""Options every command shares (`--config`, the role overrides) and the config loading they feed."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from teachwhy.config import ExperimentConfig, apply_role_overrides, load_config
from teachwhy.resources import activate_resources as overlay
from teachwhy.resources import check_overlays

ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="The experiment file.", show_default=True)]
GeneratorOption = Annotated[str | None, typer.Option("--generator", help="Override the generator model.")]
TargetOption = Annotated[str | None, typer.Option("--target", help="Override the target model.")]
JudgeOption = Annotated[str | None, typer.Option("--judge", help="Override the judge model.")]
AuditorOption = Annotated[str | None, typer.Option("--auditor", help="Override the auditor model.")]
ResourcesOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--resources",
        help="A folder of your own data files laid out like the package's (scenarios/, prompts/, rubrics/, "
        "calibration/, ...), after the config's `resources` (repeatable).",
    ),
]

DEFAULT_CONFIG = Path("teachwhy.yaml")


def load_experiment(
    config: Path,
    *,
    generator: str | None = None,
    target: str | None = None,
    judge: str | None = None,
    auditor: str | None = None,
) -> ExperimentConfig:
    """Load the experiment file and apply command-line role overrides; its ``resources`` folders become the
    overlay of the rest of the command (:func:`activate_resources`)."""
    loaded = load_config(config)
    overrides = {"generator": generator, "target": target, "judge": judge, "auditor": auditor}
    updated = apply_role_overrides(loaded, overrides)
    activate_resources(updated)
    return updated


def load_judge_settings(
    config: Path, judge: str | None, resources: Sequence[Path] | None = None
) -> ExperimentConfig:
    """The experiment file with ``--judge`` applied, or the default roles and eval settings when there is no
    file (checking a judge or the instrument needs no experiment); the file's ``resources`` folders, then
    ``resources`` (``--resources``), become the overlay of the rest of the command."""
    loaded = load_config(config) if config.exists() else None
    settings = apply_role_overrides(loaded or ExperimentConfig(), {"judge": judge})
    activate_resources(loaded, resources)
    return settings


def activate_resources(
    config: ExperimentConfig | None, extra: Sequence[Path] | None = None
) -> tuple[Path, ...]:
    """Check the config's ``resources`` folders and ``extra`` (``--resources``), and make them, in that order,
    the overlay of every data file the running command loads (:mod:`teachwhy.resources`); the CLI's root
    callback ends it with the command.

    Raises:
        UserError: a folder is missing or holds a top-level folder that is not a resource area.
    """
    folders = (
        check_overlays(config.resource_paths, file=config.source, key="resources") if config else ()
    ) + check_overlays(list(extra or ()), key="--resources")
    return overlay(folders)
