"""Generation prompts, rubrics and pools as data files: Markdown with YAML front matter, or YAML.

A prompt file looks like::

    ---
    id: documents.write
    description: one constitutional document from an idea
    system: You are a versatile writer.        # optional system message
    variables: [doc_type, idea, principle]     # every placeholder the body uses
    ---
    Write a {{doc_type}} about ...

Placeholders are ``{{name}}``; rendering fails when a declared variable is not supplied, when a supplied one
is not declared, or when the body uses an undeclared one, so a typo in a prompt file is caught before any
model call. Every rendered prompt carries the file path and its content hash, which go into each record's
provenance.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from teachwhy.errors import UserError
from teachwhy.resources import Stamp, package_dir, resource_path, stamp
from teachwhy.storage import content_hash

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*\r?\n?", re.DOTALL)


def prompts_dir() -> Path:
    """The folder that holds the packaged prompt files."""
    return package_dir("prompts")


@dataclass(frozen=True)
class RenderedPrompt:
    """A prompt filled in with its variables, ready to send, with its provenance."""

    name: str
    file: str
    sha256: str
    system: str | None
    user: str


@dataclass(frozen=True)
class Prompt:
    """One prompt file: its front matter, body template and provenance.

    Attributes:
        name: the file's path relative to the prompts folder, without ``.md`` (e.g. ``documents/write``).
        path: the file.
        sha256: content hash of the file's bytes (16 hex digits).
        meta: the front matter.
        body: the template after the front matter.
    """

    name: str
    path: Path
    sha256: str
    meta: dict[str, Any] = field(default_factory=dict)
    body: str = ""

    @property
    def variables(self) -> tuple[str, ...]:
        declared = self.meta.get("variables") or []
        return tuple(str(v) for v in declared)

    def render(self, **values: Any) -> RenderedPrompt:
        """Fill every ``{{placeholder}}`` in the body (and the system message) with ``values``.

        Raises:
            UserError: a declared variable is missing, an undeclared one is supplied or used.
        """
        declared = set(self.variables)
        supplied = set(values)
        if declared - supplied:
            raise UserError(
                f"variables not supplied: {', '.join(sorted(declared - supplied))}",
                file=self.path,
                key="variables",
            )
        if supplied - declared:
            raise UserError(
                f"variables not declared: {', '.join(sorted(supplied - declared))}",
                file=self.path,
                key="variables",
            )

        def fill(template: str) -> str:
            def one(match: re.Match[str]) -> str:
                name = match.group(1)
                if name not in declared:
                    raise UserError(
                        f"placeholder {{{{{name}}}}} is not declared", file=self.path, key="variables"
                    )
                return str(values[name])

            return _PLACEHOLDER.sub(one, template)

        system = self.meta.get("system")
        return RenderedPrompt(
            name=self.name,
            file=f"teachwhy/prompts/{self.name}.md"
            if self.path.is_relative_to(prompts_dir())
            else str(self.path),
            sha256=self.sha256,
            system=fill(str(system)).strip() if system else None,
            user=fill(self.body).strip(),
        )


def parse_prompt(text: str, *, name: str, path: Path) -> Prompt:
    """Parse the text of a prompt file (front matter + body)."""
    match = _FRONT_MATTER.match(text)
    meta: dict[str, Any] = {}
    body = text
    if match:
        try:
            loaded = yaml.safe_load(match.group(1))
        except yaml.YAMLError as e:
            raise UserError(f"front matter is not valid YAML ({e})", file=path) from None
        if loaded is not None and not isinstance(loaded, dict):
            raise UserError("front matter must be a mapping", file=path)
        meta = loaded or {}
        body = text[match.end() :]
    variables = meta.get("variables", [])
    if not isinstance(variables, list) or not all(isinstance(v, str) for v in variables):
        raise UserError("must be a list of names", file=path, key="variables")
    used = set(_PLACEHOLDER.findall(body)) | set(_PLACEHOLDER.findall(str(meta.get("system") or "")))
    undeclared = used - set(variables)
    if undeclared:
        raise UserError(
            f"placeholders not declared: {', '.join(sorted(undeclared))}", file=path, key="variables"
        )
    return Prompt(name=name, path=path, sha256=content_hash(text.encode("utf-8")), meta=meta, body=body)


@cache
def _load(file: Stamp, name: str) -> Prompt:
    path = file[0]
    if not path.exists():
        raise UserError(f"prompt '{name}' not found", file=path)
    return parse_prompt(path.read_text(encoding="utf-8"), name=name, path=path)


def load_prompt(name: str, *, directory: str | Path | None = None, area: str = "prompts") -> Prompt:
    """Load a prompt file by name, e.g. ``load_prompt("documents/write")``.

    The file is resolved through the user's overlay folders (:mod:`teachwhy.resources`), so an overlay's
    ``prompts/documents/write.md`` replaces the package's.

    Args:
        name: path relative to the prompts folder, without ``.md``.
        directory: a folder of the user's own prompt files to look in first (same names).
        area: the resource area the prompt belongs to (``prompts``, ``assessment_prompts``, ...).
    """
    if directory is not None:
        candidate = Path(directory) / f"{name}.md"
        if candidate.exists():
            return _load(stamp(candidate.resolve()), name)
    return _load(stamp(resource_path(area, f"{name}.md")), name)


def load_pool(name: str) -> list[Any]:
    """Load a YAML pool by name (its ``items`` list), e.g. ``load_pool("pool_story_settings")``."""
    path = resource_path("prompts", f"{name}.yaml")
    if not path.exists():
        raise UserError(f"pool '{name}' not found", file=path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise UserError(f"not valid YAML ({getattr(e, 'problem', e)})", file=path) from None
    items = data.get("items") if isinstance(data, dict) else None
    if not isinstance(items, list) or not items:
        raise UserError("must hold a non-empty list", file=path, key="items")
    return items


def pool_sha256(name: str) -> str:
    """Content hash of a pool file (an overlay's where it replaces the package's), for provenance and keys."""
    return content_hash(resource_path("prompts", f"{name}.yaml").read_bytes())


__all__ = [
    "Prompt",
    "RenderedPrompt",
    "load_pool",
    "load_prompt",
    "parse_prompt",
    "pool_sha256",
    "prompts_dir",
]
