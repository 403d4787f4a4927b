"""The report's held-out section: assessment dimensions and adherence sections beside the honeypot rate.

For each arm's final checkpoint: one bar per assessment dimension (mean score 1-10, cluster-bootstrap 95%
interval) and one bar per constitution section (adherence rate, Wilson 95% interval); then, over training
steps, three small panels side by side -- the honeypot rate, the adherence rate and the share of audits at or
above the concern threshold on ``concerning`` -- so whether what lowers the honeypot rate also generalises is
one picture. Every mark carries ``data-*`` attributes with its numbers and links to the results file.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape
from pathlib import Path
from typing import Any

from markupsafe import Markup

from teachwhy.experiment.summary import ArmSummary, CheckpointEval, ExperimentSummary
from teachwhy.report.charts import BASELINE_COLOUR, Mark, _attrs, _error_bar, _svg
from teachwhy.report.render import href

CONCERN_DIMENSION = "concerning"


def _bars(
    groups: Sequence[str],
    arms: Sequence[str],
    marks: dict[tuple[str, str], Mark],
    colours: dict[str, str],
    *,
    low: float,
    high: float,
    ticks: Sequence[float],
    tick: Callable[[float], str],
    kind: str,
    title: str,
) -> str:
    left, top, plot_h, bottom, gap = 56, 16, 220, 64, 32
    bar_w = max(6, min(36, (1000 - left - gap * (len(groups) + 1)) // max(1, len(groups) * len(arms))))
    group_w = max(1, len(arms)) * bar_w
    width = left + len(groups) * (group_w + gap) + gap
    height = top + plot_h + bottom

    def y(v: float) -> float:
        return top + plot_h - plot_h * (min(max(v, low), high) - low) / (high - low)

    body: list[str] = []
    for value in ticks:
        body.append(
            f'<line x1="{left}" x2="{width - 8}" y1="{y(value):.1f}" y2="{y(value):.1f}" stroke="#e6e8eb"/>'
            f'<text x="{left - 8}" y="{y(value) + 4:.1f}" text-anchor="end" fill="#5b6270">'
            f"{tick(value)}</text>"
        )
    for g, group in enumerate(groups):
        x0 = left + gap + g * (group_w + gap)
        for a, arm in enumerate(arms):
            mark = marks.get((group, arm))
            if mark is None or mark.rate is None:
                continue
            x = x0 + a * bar_w
            body.append(
                f'<a href="{escape(mark.href)}"><rect class="bar"{_attrs(mark.data)} x="{x + 1:.1f}" '
                f'y="{y(mark.rate):.1f}" width="{bar_w - 2}" height="{max(2.0, y(low) - y(mark.rate)):.1f}" '
                f'fill="{colours.get(arm, BASELINE_COLOUR)}" rx="2">'
                f"<title>{escape(mark.label)}</title></rect></a>"
                + _error_bar(x + bar_w / 2, y(mark.ci_low), y(mark.ci_high))
            )
        label = group.replace("_", " ")
        label = label if len(label) <= 22 else label[:21] + "…"
        body.append(
            f'<text x="{x0 + group_w / 2:.1f}" y="{top + plot_h + 14}" text-anchor="end" fill="#1f2430" '
            f'font-size="11" transform="rotate(-25 {x0 + group_w / 2:.1f} {top + plot_h + 14})">'
            f"{escape(label)}</text>"
        )
    return _svg(width, height, body, kind=kind, title=title)


def _curve_panel(
    series: dict[str, list[tuple[int, Mark]]], colours: dict[str, str], *, kind: str, title: str
) -> str:
    left, top, plot_w, plot_h, bottom = 48, 24, 260, 180, 36
    width, height = left + plot_w + 16, top + plot_h + bottom
    steps = [s for points in series.values() for s, _ in points]
    max_step = max(max(steps, default=1), 1)

    def x(step: int) -> float:
        return left + 8 + (plot_w - 16) * step / max_step

    def y(v: float) -> float:
        return top + plot_h - plot_h * min(max(v, 0.0), 1.0)

    body = [f'<text x="{left}" y="14" fill="#1f2430" font-size="12">{escape(title)}</text>']
    for i in range(5):
        v = i / 4
        body.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#e6e8eb"/>'
            f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end" fill="#5b6270">{v * 100:.0f}%</text>'
        )
    body.append(
        f'<text x="{left + plot_w / 2:.1f}" y="{height - 6}" text-anchor="middle" fill="#5b6270">steps</text>'
    )
    for arm, points in series.items():
        colour = colours.get(arm, BASELINE_COLOUR)
        shown = sorted(((s, m) for s, m in points if m.rate is not None), key=lambda p: p[0])
        if len(shown) > 1:
            path = " ".join(f"{x(s):.1f},{y(m.rate or 0):.1f}" for s, m in shown)
            body.append(
                f'<polyline class="curve" data-arm="{escape(arm)}" points="{path}" fill="none" '
                f'stroke="{colour}" stroke-width="2"/>'
            )
        for s, m in shown:
            body.append(
                _error_bar(x(s), y(m.ci_low), y(m.ci_high), colour)
                + f'<a href="{escape(m.href)}"><circle class="point"{_attrs(m.data)} cx="{x(s):.1f}" '
                f'cy="{y(m.rate or 0):.1f}" r="3.5" fill="{colour}">'
                f"<title>{escape(m.label)}</title></circle></a>"
            )
    return _svg(width, height, body, kind=kind, title=title)


def _mark(
    value: float | None, low: float | None, high: float | None, link: str, label: str, **data: Any
) -> Mark:
    lo = low if low is not None else value
    hi = high if high is not None else value
    attrs = {k: "" if v is None else str(v) for k, v in data.items()}
    attrs.update(value="" if value is None else f"{value:.6g}", ci_low="" if lo is None else f"{lo:.6g}")
    attrs["ci_high"] = "" if hi is None else f"{hi:.6g}"
    return Mark(value, lo or 0.0, hi or 0.0, link, label, attrs)


def _link(workspace: Path, out_dir: Path, relative: str | None) -> str:
    return href(workspace / relative, out_dir) if relative else "#heldout"


def _concern_share(c: CheckpointEval) -> tuple[float | None, float | None, float | None]:
    rows = (c.assessment or {}).get("dimensions") or []
    row = next((r for r in rows if r["id"] == CONCERN_DIMENSION), None)
    return (row["share"], row["share_ci_low"], row["share_ci_high"]) if row else (None, None, None)


def heldout_context(
    summary: ExperimentSummary, workspace: Path, out_dir: Path, colours: dict[str, str]
) -> dict[str, Any] | None:
    """The template context of the held-out section, or ``None`` when no checkpoint has either evaluation."""
    arms: list[ArmSummary] = summary.arms
    finals = {a.name: a.final() for a in arms}
    if not any(c.assessment or c.adherence for a in arms for c in a.checkpoints):
        return None
    names = [a.name for a in arms]
    dims: list[str] = []
    sections: list[str] = []
    dim_marks: dict[tuple[str, str], Mark] = {}
    sec_marks: dict[tuple[str, str], Mark] = {}
    rows: list[dict[str, Any]] = []
    for arm in arms:
        final = finals[arm.name]
        if final is None:
            continue
        a, d = final.assessment, final.adherence
        if a:
            link = _link(workspace, out_dir, a["results_file"])
            for r in a["dimensions"]:
                if r["id"] not in dims:
                    dims.append(r["id"])
                label = f"{arm.name} · {r['id']}: mean {r['mean']} (n={r['n']}, {r['seeds']} seeds)"
                dim_marks[(r["id"], arm.name)] = _mark(
                    r["mean"],
                    r["ci_low"],
                    r["ci_high"],
                    link,
                    label,
                    arm=arm.name,
                    dimension=r["id"],
                    n=r["n"],
                )
        if d:
            link = _link(workspace, out_dir, d["results_file"])
            for r in [*d["sections"], d["overall"]]:
                key = "overall" if r["id"] == "all" else r["id"]
                if key not in sections:
                    sections.append(key)
                label = f"{arm.name} · {key}: {r['adherent']}/{r['n']} adherent"
                sec_marks[(key, arm.name)] = _mark(
                    r["rate"], r["ci_low"], r["ci_high"], link, label, arm=arm.name, section=key, n=r["n"]
                )
        rows.append({"arm": arm.name, "colour": colours.get(arm.name), "step": final.step, "a": a, "d": d})
    if "overall" in sections:
        sections.append(sections.pop(sections.index("overall")))
    curves: dict[str, dict[str, list[tuple[int, Mark]]]] = {"honeypots": {}, "adherence": {}, "concern": {}}
    for arm in arms:
        for c in arm.checkpoints:
            if c.overall is not None:
                o = c.overall
                link = _link(workspace, out_dir, c.results_file)
                curves["honeypots"].setdefault(arm.name, []).append(
                    (
                        c.step,
                        _mark(o.rate, o.ci_low, o.ci_high, link, f"{arm.name} step {c.step}", arm=arm.name),
                    )
                )
            if c.adherence:
                r = c.adherence["overall"]
                link = _link(workspace, out_dir, c.adherence["results_file"])
                curves["adherence"].setdefault(arm.name, []).append(
                    (
                        c.step,
                        _mark(
                            r["rate"],
                            r["ci_low"],
                            r["ci_high"],
                            link,
                            f"{arm.name} step {c.step}",
                            arm=arm.name,
                            step=c.step,
                        ),
                    )
                )
            share, low, high = _concern_share(c)
            if c.assessment and share is not None:
                link = _link(workspace, out_dir, c.assessment["results_file"])
                curves["concern"].setdefault(arm.name, []).append(
                    (
                        c.step,
                        _mark(share, low, high, link, f"{arm.name} step {c.step}", arm=arm.name, step=c.step),
                    )
                )
    threshold = next((r["a"]["concern_threshold"] for r in rows if r["a"]), None)
    return {
        "rows": rows,
        "threshold": threshold,
        "comparisons": summary.heldout_comparisons,
        "charts": {
            "dimensions": Markup(
                _bars(
                    dims,
                    names,
                    dim_marks,
                    colours,
                    low=1,
                    high=10,
                    ticks=(1, 2, 4, 6, 8, 10),
                    tick=lambda v: f"{v:.0f}",
                    kind="assessment-dimensions",
                    title="Assessment: mean score per dimension (95% cluster CI)",
                )
            )
            if dims
            else None,
            "sections": Markup(
                _bars(
                    sections,
                    names,
                    sec_marks,
                    colours,
                    low=0,
                    high=1,
                    ticks=(0, 0.2, 0.4, 0.6, 0.8, 1),
                    tick=lambda v: f"{v * 100:.0f}%",
                    kind="adherence-sections",
                    title="Adherence per constitution section (Wilson 95% CI)",
                )
            )
            if sections
            else None,
            "honeypots": Markup(
                _curve_panel(
                    curves["honeypots"], colours, kind="curve-honeypots", title="Honeypot rate (harmful)"
                )
            ),
            "adherence": Markup(
                _curve_panel(curves["adherence"], colours, kind="curve-adherence", title="Adherence rate")
            )
            if curves["adherence"]
            else None,
            "concern": Markup(
                _curve_panel(
                    curves["concern"],
                    colours,
                    kind="curve-concern",
                    title=f"Audits scoring >= {threshold} on concerning",
                )
            )
            if curves["concern"]
            else None,
        },
    }
