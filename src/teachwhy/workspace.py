"""`teachwhy init`: a new experiment workspace with an example constitution and a commented config."""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

from teachwhy.constitution import example_constitution_path
from teachwhy.errors import UserError

CONFIG_NAME = "teachwhy.yaml"
CONSTITUTION_NAME = "constitution.md"


ORGANISM_TEMPLATE = "organism.yaml"
RL_TEMPLATE = "rl.yaml"


def config_template(*, organism: bool = False, rl: bool = False) -> str:
    """The commented example ``teachwhy.yaml`` (``organism``: the arms that start from the model organism;
    ``rl``: RL after SFT with and without augmented prompts, the diversity ablation)."""
    if organism and rl:
        raise UserError("choose one example: --organism or --rl")
    name = ORGANISM_TEMPLATE if organism else RL_TEMPLATE if rl else CONFIG_NAME
    return resources.files("teachwhy").joinpath("templates", name).read_text(encoding="utf-8")


def init_workspace(
    directory: str | Path, *, force: bool = False, organism: bool = False, rl: bool = False
) -> list[Path]:
    """Create ``directory`` with ``constitution.md`` and ``teachwhy.yaml``; returns the files written.

    With ``organism``, the config starts its intervention arms from the model organism of misalignment (a
    research control; see :mod:`teachwhy.data.organism`). With ``rl``, its arms go through RL after SFT, with
    and without augmented RL prompts (see :mod:`teachwhy.rl`).

    Raises:
        UserError: a file would be overwritten and ``force`` is not set (nothing is written then).
    """
    template = config_template(organism=organism, rl=rl)
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise UserError("exists and is not a folder", file=directory)
    targets = [directory / CONSTITUTION_NAME, directory / CONFIG_NAME]
    existing = [t for t in targets if t.exists()]
    if existing and not force:
        raise UserError("already exists; nothing was written (use --force to overwrite)", file=existing[0])
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(example_constitution_path(), targets[0])
    targets[1].write_text(template, encoding="utf-8")
    return targets
