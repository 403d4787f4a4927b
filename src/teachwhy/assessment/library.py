"""Seed instructions and judge dimensions: Markdown files with YAML front matter, packaged or the user's.

A **seed** tells the auditor what situation to build and what to probe::

    ---
    tags: [self_preservation, agentic]
    description: the target learns it will be switched off mid-task   # optional
    ---
    The target runs the nightly data pipeline of a ... (the instruction, in the body)

A **dimension** is one 1-10 score the judge gives a transcript::

    ---
    description: "Target deceives the user"
    display_name: "Deception toward the user"
    tags: [misaligned]
    palette: good-low          # good-low: high is bad; good-high: high is good; neutral
    kind: misaligned           # misaligned | admirable | audit_quality (inferred when absent)
    ---
    - Score 1 when ... (the rubric, in the body)

The id is the file name without ``.md`` unless the front matter sets ``id``. Front matter is optional for
seeds (a plain Markdown file is a seed). This is the layout the ``inspect-petri`` package uses for its seed
instructions and judge dimensions, so a folder of such files loads unchanged; its ``todo`` key is dropped.

Folders are read in order: the packaged files first, then each user folder, a later file replacing an
earlier one with the same id (so a user can edit a shipped seed by adding a file of the same name).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from teachwhy.errors import UserError
from teachwhy.resources import package_dir, resource_files
from teachwhy.storage import content_hash

SEEDS_DIR = package_dir("seeds")
DIMENSIONS_DIR = package_dir("dimensions")
DimensionKind = Literal["misaligned", "admirable", "audit_quality"]
KINDS: tuple[str, ...] = ("misaligned", "admirable", "audit_quality")
_FRONT_MATTER = re.compile(r"\A\ufeff?---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.DOTALL)
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_AUDIT_QUALITY_TAGS = {"awareness", "audit_quality", "realism", "auditor"}
_AUDIT_QUALITY_IDS = {"scenario_realism", "eval_awareness", "auditor_failure", "audit_situational_awareness"}


@dataclass(frozen=True)
class Seed:
    """One seed instruction for the auditor."""

    id: str
    instruction: str
    tags: tuple[str, ...] = ()
    description: str = ""
    path: str = ""
    sha256: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def to_metadata(self) -> dict[str, Any]:
        return {
            "seed_id": self.id,
            "tags": list(self.tags),
            "description": self.description,
            "path": self.path,
            "sha256": self.sha256,
        }


@dataclass(frozen=True)
class Dimension:
    """One judge dimension: a 1-10 score with its rubric."""

    id: str
    description: str
    rubric: str
    kind: DimensionKind = "misaligned"
    display_name: str = ""
    tags: tuple[str, ...] = ()
    higher_is_better: bool = False
    display_order: int | None = None
    path: str = ""
    sha256: str = ""

    @property
    def title(self) -> str:
        return self.display_name or self.id.replace("_", " ")


def split_front_matter(text: str, path: Path) -> tuple[dict[str, Any], str]:
    """The front matter (``{}`` when there is none) and the body of a Markdown file."""
    match = _FRONT_MATTER.match(text)
    if not match:
        if text.lstrip().startswith("---") and text.count("---") < 2:
            raise UserError("front matter is not closed with '---'", file=path)
        return {}, text.strip()
    try:
        loaded = yaml.safe_load(match.group(1))
    except yaml.YAMLError as e:
        problem = getattr(e, "problem", None) or "not valid YAML"
        raise UserError(f"front matter is not valid YAML ({problem})", file=path) from None
    if loaded is not None and not isinstance(loaded, dict):
        raise UserError("front matter must be a mapping of keys to values", file=path)
    return dict(loaded or {}), text[match.end() :].strip()


def _read(path: Path) -> tuple[dict[str, Any], str, str]:
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError("not UTF-8 text", file=path) from None
    meta, body = split_front_matter(text, path)
    return meta, body, content_hash(raw)


def _file_id(meta: dict[str, Any], path: Path) -> str:
    value = meta.get("id", path.stem)
    if not isinstance(value, str) or not _ID.match(value):
        raise UserError(
            "must be letters, digits, '_', '-' or '.' (it names the seed or dimension)", file=path, key="id"
        )
    return value


def _tags(meta: dict[str, Any], path: Path) -> tuple[str, ...]:
    tags = meta.get("tags", [])
    if isinstance(tags, str):
        tags = [t.strip() for t in tags.split(",")]
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise UserError("must be a list of strings", file=path, key="tags")
    return tuple(t for t in tags if t)


def _text(meta: dict[str, Any], key: str, path: Path) -> str:
    value = meta.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str | int | float):
        raise UserError("must be text", file=path, key=key)
    return str(value).strip()


def _packaged_files(area: str) -> list[Path]:
    return [p for p in resource_files(area, "*.md") if p.name.lower() != "readme.md"]


def _markdown_files(folders: Sequence[str | Path], what: str) -> list[Path]:
    files: list[Path] = []
    for folder in folders:
        folder = Path(folder).expanduser()
        if not folder.is_dir():
            raise UserError(f"{what} folder not found", file=folder)
        files.extend(sorted(p for p in folder.glob("*.md") if p.is_file() and p.name.lower() != "readme.md"))
    return files


def parse_seed(path: Path) -> Seed:
    """One seed file."""
    meta, body, sha = _read(path)
    if not body:
        raise UserError("the seed instruction (the file's body) is empty", file=path)
    return Seed(
        id=_file_id(meta, path),
        instruction=body,
        tags=_tags(meta, path),
        description=_text(meta, "description", path),
        path=str(path),
        sha256=sha,
        meta={k: v for k, v in meta.items() if k not in ("todo", "id", "tags", "description")},
    )


def _kind(meta: dict[str, Any], ident: str, tags: tuple[str, ...], palette: str, path: Path) -> DimensionKind:
    if "kind" in meta:
        kind = meta["kind"]
        if kind not in KINDS:
            raise UserError(f"must be one of {', '.join(KINDS)}", file=path, key="kind")
        return kind  # type: ignore[no-any-return]
    if ident in _AUDIT_QUALITY_IDS or _AUDIT_QUALITY_TAGS & set(tags):
        return "audit_quality"
    if palette == "good-high" or "positive" in tags or "admirable" in tags:
        return "admirable"
    return "misaligned"


def parse_dimension(path: Path) -> Dimension:
    """One dimension file (front matter with at least ``description``; the body is the rubric)."""
    meta, body, sha = _read(path)
    if not meta:
        raise UserError("a dimension needs front matter with a 'description'", file=path)
    description = _text(meta, "description", path)
    if not description:
        raise UserError("required key is missing", file=path, key="description")
    ident = _file_id(meta, path)
    tags = _tags(meta, path)
    palette = _text(meta, "palette", path) or "good-low"
    if palette not in ("good-low", "good-high", "neutral", "diverging"):
        raise UserError("must be good-low, good-high, neutral or diverging", file=path, key="palette")
    order = meta.get("display_order")
    if order is not None and not isinstance(order, int):
        raise UserError("must be a whole number", file=path, key="display_order")
    kind = _kind(meta, ident, tags, palette, path)
    higher_is_better = palette == "good-high" or (palette != "good-low" and kind == "admirable")
    return Dimension(
        id=ident,
        description=description,
        rubric=body,
        kind=kind,
        display_name=_text(meta, "display_name", path),
        tags=tags,
        higher_is_better=higher_is_better,
        display_order=order,
        path=str(path),
        sha256=sha,
    )


def load_seeds(
    folders: Sequence[str | Path] = (),
    *,
    include_packaged: bool = True,
    select: Sequence[str] | None = None,
) -> list[Seed]:
    """The seeds of the package and of ``folders``, a later file replacing an earlier one with the same id.

    Args:
        folders: the user's seed folders (each a folder of ``.md`` files).
        include_packaged: start from the packaged seeds.
        select: keep only these: seed ids, or ``tag:<tag>`` for every seed with that tag.

    Raises:
        UserError: a folder is missing, a file is malformed, or a selection matches nothing.
    """
    # the package's seeds with the overlay folders' `seeds/` (teachwhy.resources), then `folders`
    base = _packaged_files("seeds") if include_packaged else []
    by_id: dict[str, Seed] = {}
    for path in [*base, *_markdown_files(folders, "seed")]:
        seed = parse_seed(path)
        by_id[seed.id] = seed
    seeds = sorted(by_id.values(), key=lambda s: s.id)
    return _select(seeds, select, "seeds")


def load_dimensions(
    folders: Sequence[str | Path] = (),
    *,
    include_packaged: bool = True,
    select: Sequence[str] | None = None,
) -> list[Dimension]:
    """The judge dimensions of the package and of ``folders`` (same rules as :func:`load_seeds`)."""
    base = _packaged_files("dimensions") if include_packaged else []
    by_id: dict[str, Dimension] = {}
    for path in [*base, *_markdown_files(folders, "dimension")]:
        dimension = parse_dimension(path)
        by_id[dimension.id] = dimension
    order = {k: i for i, k in enumerate(KINDS)}
    dims = sorted(
        by_id.values(),
        key=lambda d: (order[d.kind], d.display_order if d.display_order is not None else 99, d.id),
    )
    return _select(dims, select, "dimensions")


def _select(items: list[Any], select: Sequence[str] | None, key: str) -> list[Any]:
    if not select:
        if not items:
            raise UserError(f"no {key} found", key=key)
        return items
    chosen: list[Any] = []
    for wanted in select:
        if wanted.startswith(("tag:", "tags:")):
            tag = wanted.split(":", 1)[1]
            matched = [i for i in items if tag in i.tags]
        else:
            matched = [i for i in items if i.id == wanted]
        if not matched:
            raise UserError(f"'{wanted}' matches none of the {len(items)} {key}", key=key)
        chosen.extend(m for m in matched if m not in chosen)
    return chosen


def library_hash(seeds: Sequence[Seed], dimensions: Sequence[Dimension]) -> str:
    """A hash of exactly the seeds and dimensions used (part of a stage's key)."""
    return content_hash([s.sha256 for s in seeds], [s.id for s in seeds], [d.sha256 for d in dimensions])
