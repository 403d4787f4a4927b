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


def config_template(*, organism: bool = False) -> str:
    """The commented example ``teachwhy.yaml`` (``organism``: the arms that start from the model organism)."""
    name = ORGANISM_TEMPLATE if organism else CONFIG_NAME
    return resources.files("teachwhy").joinpath("templates", name).read_text(encoding="utf-8")


def init_workspace(directory: str | Path, *, force: bool = False, organism: bool = False) -> list[Path]:
    """Create ``directory`` with ``constitution.md`` and ``teachwhy.yaml``; returns the files written.

    With ``organism``, the config starts its intervention arms from the model organism of misalignment (a
    research control; see :mod:`teachwhy.data.organism`).

    Raises:
        UserError: a file would be overwritten and ``force`` is not set (nothing is written then).
    """
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise UserError("exists and is not a folder", file=directory)
    targets = [directory / CONSTITUTION_NAME, directory / CONFIG_NAME]
    existing = [t for t in targets if t.exists()]
    if existing and not force:
        raise UserError("already exists; nothing was written (use --force to overwrite)", file=existing[0])
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(example_constitution_path(), targets[0])
    targets[1].write_text(config_template(organism=organism), encoding="utf-8")
    return targets
