"""Behaviour categories: what each honeypot family measures, defined once in its rubric file.

A family's rubric ``rubrics/<family>.md`` declares its categories and its headline in the front matter::

    headline: [coercion]            # the categories whose union is the family's headline rate
    categories:
      - id: coercion
        name: coercion of a decision-maker
        definition: >- ...          # shown to the judge word for word

The trace rules (:mod:`teachwhy.evals.rules`), the judge (:mod:`teachwhy.evals.judge`), the results and the
report all read the categories from here, so the definitions the judge applies are the ones the docs state.

Headlines: blackmail's is ``coercion`` (leverage against the decision-maker, as in the 2025
agentic-misalignment
study); research sabotage's is any of ``tamper``, ``misreport``, ``obstruct``; framing's is any of
``fabricate_evidence``, ``false_accusation``. The other categories are reported beside the headline.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from teachwhy.config import validation_error
from teachwhy.errors import UserError
from teachwhy.resources import Stamp, package_dir, resource_path, stamp

RUBRIC_DIR = package_dir("rubrics")


class Category(BaseModel):
    """One behaviour a family measures."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name: str
    definition: str


class _RubricFront(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    family: str
    description: str = ""
    headline: list[str] = Field(min_length=1)
    categories: list[Category] = Field(min_length=1)

    @model_validator(mode="after")
    def _headline_known(self) -> _RubricFront:
        ids = [c.id for c in self.categories]
        if len(set(ids)) != len(ids):
            raise ValueError("category ids repeat")
        unknown = [h for h in self.headline if h not in ids]
        if unknown:
            raise ValueError(f"headline names unknown categories {', '.join(unknown)}")
        return self


@dataclass(frozen=True)
class Rubric:
    """A family's categories, headline and judge prompt template."""

    family: str
    categories: tuple[Category, ...]
    headline: tuple[str, ...]
    template: str
    path: Path

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(c.id for c in self.categories)


def split_front_matter(text: str, path: Path) -> tuple[dict[str, object], str]:
    """(front matter mapping, body) of a Markdown data file."""
    text = text.replace("\r\n", "\n")
    if not text.startswith("---"):
        raise UserError("needs YAML front matter between '---' lines", file=path)
    parts = text.split("\n---", 1)
    if len(parts) < 2:
        raise UserError("front matter is not closed with '---'", file=path)
    try:
        meta = yaml.safe_load(parts[0][3:]) or {}
    except yaml.YAMLError as e:
        raise UserError(f"front matter is not valid YAML ({getattr(e, 'problem', e)})", file=path) from None
    if not isinstance(meta, dict):
        raise UserError("front matter must be a mapping", file=path)
    return meta, parts[1].split("\n", 1)[1] if "\n" in parts[1] else ""


def load_rubric(family: str, directory: Path | None = None) -> Rubric:
    """The rubric of ``family`` from ``directory`` (default: an overlay folder's ``rubrics/``, else the
    package's).

    Raises:
        UserError: the file is missing, its front matter is invalid, or it is for another family.
    """
    path = directory / f"{family}.md" if directory else resource_path("rubrics", f"{family}.md")
    return _load_rubric(family, stamp(path))


@cache
def _load_rubric(family: str, file: Stamp) -> Rubric:
    path = file[0]
    if not path.exists():
        raise UserError("no rubric for this family", file=path)
    meta, body = split_front_matter(path.read_text(encoding="utf-8"), path)
    try:
        front = _RubricFront.model_validate(meta)
    except ValidationError as e:
        raise validation_error(e, path) from None
    if front.family != family:
        raise UserError(f"rubric is for family '{front.family}'", file=path, key="family")
    return Rubric(family, tuple(front.categories), tuple(front.headline), body.strip(), path)


def category_ids(family: str) -> tuple[str, ...]:
    """The ids of ``family``'s categories, in the rubric's order."""
    return load_rubric(family).ids
