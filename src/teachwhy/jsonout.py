"""What commands print: rich tables for people, JSON for scripts (``--json``).

- :func:`make_console`: the rich console every command prints through. Piped or redirected, it is
  :data:`PIPED_WIDTH` columns wide, so tables are not wrapped at 80 columns in logs and files (``COLUMNS``
  still wins when set).
- :data:`JsonOption` and :func:`emit_json`: with ``--json`` a command writes exactly one JSON document on
  stdout and nothing else (progress and warnings go to stderr or nowhere).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

PIPED_WIDTH = 200

JsonOption = Annotated[
    bool, typer.Option("--json", help="Print machine-readable JSON on stdout (and nothing else).")
]


def make_console() -> Console:
    """A console for command output: the terminal's width, or :data:`PIPED_WIDTH` when not a terminal."""
    piped = not sys.stdout.isatty() and "COLUMNS" not in os.environ
    return Console(width=PIPED_WIDTH if piped else None)


def to_jsonable(value: Any) -> Any:
    """Plain JSON data from results: ``to_dict()`` where defined, dataclasses, pydantic models, paths.

    Mapping keys become strings (a tuple key such as a confusion cell ``(label, answer)`` becomes
    ``"label->answer"``); sets become sorted lists; NaN and infinities become ``null``.
    """
    if hasattr(value, "to_dict") and callable(value.to_dict):
        return to_jsonable(value.to_dict())
    if hasattr(value, "model_dump") and callable(value.model_dump):
        return to_jsonable(value.model_dump(mode="json"))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {_key(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted(to_jsonable(v) for v in value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None  # strict JSON (jq, JavaScript) has no NaN or infinity
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _key(key: Any) -> str:
    if isinstance(key, tuple):
        return "->".join(str(k) for k in key)
    return str(key)


def emit_json(value: Any) -> None:
    """Write ``value`` (see :func:`to_jsonable`) as one indented JSON document on stdout."""
    sys.stdout.write(json.dumps(to_jsonable(value), indent=2, ensure_ascii=False, allow_nan=False) + "\n")
    sys.stdout.flush()
