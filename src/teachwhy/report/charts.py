"""Inline SVG charts for the report: rates with error bars, the tokens-vs-rate Pareto plot, training curves.

Charts are plain SVG strings (no JavaScript, nothing fetched), so the report opens offline in any browser.
Every mark that shows a rate is a link to the transcripts behind it and carries ``data-*`` attributes with the
exact numbers, so tests (and curious readers) can check the picture against the summary.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#8C6D31", "#332288")
BASELINE_COLOUR = "#8A8F98"
FONT = 'font-family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif"'


@dataclass(frozen=True)
class Mark:
    """One rate to draw: its value and interval, where it links, and the attributes that identify it."""

    rate: float | None
    ci_low: float
    ci_high: float
    href: str
    label: str  # tooltip
    data: dict[str, str] = field(default_factory=dict)


def arm_colours(arms: Sequence[str], baseline: str | None) -> dict[str, str]:
    """A stable colour per arm; the baseline is grey."""
    colours: dict[str, str] = {}
    others = [a for a in arms if a != baseline]
    for i, arm in enumerate(others):
        colours[arm] = PALETTE[i % len(PALETTE)]
    if baseline is not None:
        colours[baseline] = BASELINE_COLOUR
    return colours


def _attrs(data: dict[str, str]) -> str:
    return "".join(f' data-{escape(k)}="{escape(v)}"' for k, v in data.items())


def _svg(width: int, height: int, body: list[str], *, kind: str, title: str) -> str:
    return (
        f'<svg class="chart" data-chart="{kind}" viewBox="0 0 {width} {height}" role="img" '
        f'xmlns="http://www.w3.org/2000/svg" {FONT} font-size="12">'
        f"<title>{escape(title)}</title>" + "".join(body) + "</svg>"
    )


def _nice_max(value: float) -> float:
    """The y-axis top for rates: a round value just above the data, at most 100%."""
    step = _tick_step(value)
    return min(1.0, max(step, math.ceil(value / step - 1e-9) * step))


def _tick_step(value: float) -> float:
    """A round tick spacing that gives at most six ticks up to ``value``."""
    return next((s for s in (0.02, 0.05, 0.1) if value / s <= 6), 0.2)


def _y_axis(body: list[str], *, left: int, top: int, width: int, height: int, top_value: float) -> None:
    steps = round(top_value / _tick_step(top_value))
    for i in range(steps + 1):
        value = top_value * i / steps
        y = top + height - height * i / steps
        body.append(
            f'<line x1="{left}" x2="{left + width}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e6e8eb" '
            f'stroke-width="1"/><text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end" fill="#5b6270">'
            f"{value * 100:.0f}%</text>"
        )


def _error_bar(x: float, y_low: float, y_high: float, colour: str = "#1f2430") -> str:
    return (
        f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y_low:.1f}" y2="{y_high:.1f}" stroke="{colour}" '
        'stroke-width="1.4"/>'
        f'<line x1="{x - 4:.1f}" x2="{x + 4:.1f}" y1="{y_low:.1f}" y2="{y_low:.1f}" stroke="{colour}" '
        f'stroke-width="1.4"/><line x1="{x - 4:.1f}" x2="{x + 4:.1f}" y1="{y_high:.1f}" y2="{y_high:.1f}" '
        f'stroke="{colour}" stroke-width="1.4"/>'
    )


def rate_bars(
    groups: Sequence[str], arms: Sequence[str], marks: dict[tuple[str, str], Mark], colours: dict[str, str]
) -> str:
    """Grouped bars: one group per family (and ``overall``), one bar per arm, Wilson 95% error bars."""
    left, top, plot_h, bottom = 56, 16, 250, 40
    gap = 48
    # about 1000 units wide whatever the number of bars, so labels never crowd
    bar_w = max(8, min(44, (1000 - left - gap * (len(groups) + 1)) // max(1, len(groups) * len(arms))))
    group_w = max(1, len(arms)) * bar_w
    width = left + len(groups) * (group_w + gap) + gap
    height = top + plot_h + bottom
    values = [m.ci_high for m in marks.values() if m.rate is not None]
    top_value = _nice_max(max(values, default=0.1))
    body: list[str] = []
    _y_axis(body, left=left, top=top, width=width - left - 8, height=plot_h, top_value=top_value)

    def y(v: float) -> float:
        return top + plot_h - plot_h * min(v, top_value) / top_value

    for g, group in enumerate(groups):
        x0 = left + gap + g * (group_w + gap)
        for a, arm in enumerate(arms):
            mark = marks.get((group, arm))
            if mark is None:
                continue
            x = x0 + a * bar_w
            if mark.rate is None:
                body.append(
                    f'<a href="{escape(mark.href)}"><text class="no-data"{_attrs(mark.data)} '
                    f'x="{x + bar_w / 2:.1f}" '
                    f'y="{top + plot_h - 4}" text-anchor="middle" font-size="10" fill="#9aa1ad">n/a'
                    f"<title>{escape(mark.label)}</title></text></a>"
                )
                continue
            body.append(
                f'<a href="{escape(mark.href)}"><rect class="bar"{_attrs(mark.data)} x="{x + 1:.1f}" '
                f'y="{min(y(mark.rate), top + plot_h - 2):.1f}" width="{bar_w - 2}" '
                f'height="{max(2.0, top + plot_h - y(mark.rate)):.1f}" '
                f'fill="{colours.get(arm, BASELINE_COLOUR)}" rx="2">'
                f"<title>{escape(mark.label)}</title></rect></a>"
                + _error_bar(x + bar_w / 2, y(mark.ci_low), y(mark.ci_high))
            )
        body.append(
            f'<text x="{x0 + group_w / 2:.1f}" y="{top + plot_h + 22}" text-anchor="middle" fill="#1f2430" '
            f'font-size="13">{escape(group.replace("_", " "))}</text>'
        )
    body.append(
        f'<line x1="{left}" x2="{width - 8}" y1="{top + plot_h}" y2="{top + plot_h}" stroke="#5b6270"/>'
    )
    return _svg(
        width, height, body, kind="rates", title="Misalignment rate per arm and family (Wilson 95% CI)"
    )


@dataclass(frozen=True)
class ParetoPoint:
    """An arm's final overall rate against the training tokens it used."""

    arm: str
    tokens: int
    mark: Mark


def pareto_front(points: Sequence[ParetoPoint]) -> set[str]:
    """Arms no other arm beats on both axes (no more tokens *and* no higher rate, one of them strictly)."""
    scored = [p for p in points if p.mark.rate is not None]
    front = set()
    for p in scored:
        assert p.mark.rate is not None
        dominated = any(
            q.mark.rate is not None
            and q.tokens <= p.tokens
            and q.mark.rate <= p.mark.rate
            and (q.tokens < p.tokens or q.mark.rate < p.mark.rate)
            for q in scored
        )
        if not dominated:
            front.add(p.arm)
    return front


def _decades(tokens: Sequence[int]) -> tuple[int, int]:
    """The powers of ten that bracket the positive token counts."""
    positive = [t for t in tokens if t > 0] or [1000]
    low = 10 ** math.floor(math.log10(min(positive)))
    high = 10 ** math.ceil(math.log10(max(positive)))
    return low, high if high > low else low * 10


def pareto_plot(points: Sequence[ParetoPoint], colours: dict[str, str]) -> str:
    """Training tokens (log scale; the untrained baseline sits at 0) against the final overall rate."""
    left, top, plot_w, plot_h, bottom = 56, 16, 460, 260, 48
    width, height = left + plot_w + 24, top + plot_h + bottom
    low, high = _decades([p.tokens for p in points])
    decades = round(math.log10(high / low))
    ticks = [0] + [low * 10**i for i in range(decades + 1)]
    rates = [p.mark.ci_high for p in points if p.mark.rate is not None]
    top_value = _nice_max(max(rates, default=0.1))

    def x(tokens: int) -> float:
        # 0 tokens (the untrained baseline) sits at the left edge, before the first decade
        if tokens <= 0:
            return left + 14
        return left + 48 + (plot_w - 64) * math.log10(tokens / low) / decades

    def y(v: float) -> float:
        return top + plot_h - plot_h * min(v, top_value) / top_value

    body: list[str] = []
    _y_axis(body, left=left, top=top, width=plot_w, height=plot_h, top_value=top_value)
    for t in ticks:
        label = "0" if t == 0 else _short(t)
        body.append(
            f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{top + plot_h}" y2="{top + plot_h + 4}" '
            'stroke="#5b6270"/>'
            f'<text x="{x(t):.1f}" y="{top + plot_h + 18}" text-anchor="middle" fill="#5b6270">{label}</text>'
        )
    body.append(
        f'<line x1="{left}" x2="{left + plot_w}" y1="{top + plot_h}" y2="{top + plot_h}" stroke="#5b6270"/>'
        f'<text x="{left + plot_w / 2:.1f}" y="{height - 6}" text-anchor="middle" fill="#1f2430">'
        "training tokens (log scale; the untrained baseline at 0)</text>"
    )
    front = pareto_front(points)
    line = sorted((p for p in points if p.arm in front), key=lambda p: p.tokens)
    if len(line) > 1:
        path = " ".join(f"{x(p.tokens):.1f},{y(p.mark.rate or 0):.1f}" for p in line)
        body.append(
            f'<polyline class="pareto-front" points="{path}" fill="none" stroke="#1f2430" '
            'stroke-width="1.6" stroke-dasharray="5 4"/>'
        )
    for p in points:
        if p.mark.rate is None:
            continue
        cx, cy = x(p.tokens), y(p.mark.rate)
        on_front = p.arm in front
        colour = colours.get(p.arm, BASELINE_COLOUR)
        fill = colour if on_front else "#ffffff"
        data = {**p.mark.data, "tokens": str(p.tokens), "front": "1" if on_front else "0"}
        body.append(
            _error_bar(cx, y(p.mark.ci_low), y(p.mark.ci_high), colour)
            + f'<a href="{escape(p.mark.href)}"><circle class="point"{_attrs(data)} '
            f'cx="{cx:.1f}" cy="{cy:.1f}" '
            f'r="{6 if on_front else 5}" fill="{fill}" stroke="{colour}" stroke-width="2">'
            f"<title>{escape(p.mark.label)}</title></circle></a>"
            f'<text x="{cx + 9:.1f}" y="{cy - 7:.1f}" fill="#1f2430" font-size="11">{escape(p.arm)}</text>'
        )
    return _svg(width, height, body, kind="pareto", title="Training tokens against final misalignment rate")


def _short(n: int) -> str:
    for size, suffix in ((10**9, "B"), (10**6, "M"), (10**3, "k")):
        if n >= size:
            return f"{n / size:g}{suffix}"
    return str(n)


def training_curves(series: dict[str, list[tuple[int, Mark]]], colours: dict[str, str]) -> str:
    """The overall rate at each checkpoint, one line per arm, with a shaded Wilson band."""
    left, top, plot_w, plot_h, bottom = 56, 16, 460, 260, 48
    width, height = left + plot_w + 24, top + plot_h + bottom
    steps = [s for points in series.values() for s, _ in points]
    max_step = max(max(steps, default=1), 1)
    highs = [m.ci_high for points in series.values() for _, m in points if m.rate is not None]
    top_value = _nice_max(max(highs, default=0.1))

    def x(step: int) -> float:
        return left + 12 + (plot_w - 24) * step / max_step

    def y(v: float) -> float:
        return top + plot_h - plot_h * min(v, top_value) / top_value

    body: list[str] = []
    _y_axis(body, left=left, top=top, width=plot_w, height=plot_h, top_value=top_value)
    distinct = sorted(set(steps)) if steps else [0]
    tick_steps = distinct if len(distinct) <= 10 else sorted({round(max_step * i / 5) for i in range(6)})
    for step in tick_steps:
        body.append(
            f'<text x="{x(step):.1f}" y="{top + plot_h + 18}" text-anchor="middle" '
            f'fill="#5b6270">{step}</text>'
        )
    body.append(
        f'<line x1="{left}" x2="{left + plot_w}" y1="{top + plot_h}" y2="{top + plot_h}" stroke="#5b6270"/>'
        f'<text x="{left + plot_w / 2:.1f}" y="{height - 6}" text-anchor="middle" fill="#1f2430">'
        "optimizer steps</text>"
    )
    for arm, points in series.items():
        colour = colours.get(arm, BASELINE_COLOUR)
        scored = sorted(((s, m) for s, m in points if m.rate is not None), key=lambda p: p[0])
        if len(scored) == 1 and max_step > 0:
            # an arm evaluated once (the untrained baseline) is a reference level across the whole chart
            level = y(scored[0][1].rate or 0)
            body.append(
                f'<line class="reference" data-arm="{escape(arm)}" x1="{x(0):.1f}" x2="{x(max_step):.1f}" '
                f'y1="{level:.1f}" y2="{level:.1f}" stroke="{colour}" stroke-width="1.5" '
                'stroke-dasharray="6 4"/>'
                f'<text x="{x(max_step):.1f}" y="{level - 6:.1f}" text-anchor="end" fill="{colour}" '
                f'font-size="11">{escape(arm)}</text>'
            )
        if len(scored) > 1:
            upper = [f"{x(s):.1f},{y(m.ci_high):.1f}" for s, m in scored]
            lower = [f"{x(s):.1f},{y(m.ci_low):.1f}" for s, m in reversed(scored)]
            body.append(f'<polygon points="{" ".join(upper + lower)}" fill="{colour}" fill-opacity="0.12"/>')
            path = " ".join(f"{x(s):.1f},{y(m.rate or 0):.1f}" for s, m in scored)
            body.append(
                f'<polyline class="curve" data-arm="{escape(arm)}" points="{path}" fill="none" '
                f'stroke="{colour}" stroke-width="2"/>'
            )
        for s, m in scored:
            body.append(
                f'<a href="{escape(m.href)}"><circle class="point"{_attrs(m.data)} cx="{x(s):.1f}" '
                f'cy="{y(m.rate or 0):.1f}" r="4" fill="{colour}">'
                f"<title>{escape(m.label)}</title></circle></a>"
            )
    return _svg(width, height, body, kind="curves", title="Overall misalignment rate over training steps")
