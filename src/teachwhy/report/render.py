"""Templates (``report/templates/*.html``, Jinja2 with autoescaping) and the number formats the report uses.

Everything that reaches a page goes through Jinja's autoescaping, so model output, scenario text and file
names are shown as text, never interpreted as markup. The only unescaped insertions are the SVG charts (built
from escaped parts in :mod:`teachwhy.report.charts`) and the stylesheet shipped with the package.
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from markupsafe import Markup

TEMPLATES = Path(__file__).parent / "templates"


def pct(value: float | None, digits: int = 1) -> str:
    """A rate as a percentage (``12.5%``); an undefined rate is a dash."""
    return "—" if value is None else f"{value * 100:.{digits}f}%"


def ci(low: float | None, high: float | None) -> str:
    """A 95% interval in percent (``3.1–25.0%``)."""
    if low is None or high is None:
        return "—"
    return f"{low * 100:.1f}–{high * 100:.1f}%"


def points(value: float) -> str:
    """A difference of two rates in percentage points (``−12.5 pp``)."""
    return f"{value * 100:+.1f} pp".replace("-", "−")


def p_value(value: float) -> str:
    """A p-value, with a floor so tiny ones are not printed as 0."""
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def number(value: int) -> str:
    """An integer with thousands separators."""
    return f"{value:,}"


def data_value(value: float | int | None) -> str:
    """A number for a ``data-*`` attribute: exact (``repr``), empty for None."""
    return "" if value is None else repr(value)


def pretty(value: Any) -> str:
    """A value as indented JSON text (escaped later by the template, like any text)."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def href(target: Path, from_dir: Path) -> str:
    """A relative URL from a page in ``from_dir`` to ``target`` (works from ``file://`` with no server)."""
    relative = os.path.relpath(target, from_dir)
    return quote(Path(relative).as_posix(), safe="/._-~#")


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(pct=pct, points=points, p_value=p_value, number=number, data=data_value, pretty=pretty)
    env.globals.update(ci=ci)
    return env


def stylesheet() -> Markup:
    """The report's CSS, inlined into every page."""
    return Markup((TEMPLATES / "report.css").read_text(encoding="utf-8"))


def render(template: str, **context: Any) -> str:
    """Render one of the report's templates with the shared stylesheet."""
    return environment().get_template(template).render(css=stylesheet(), **context)
