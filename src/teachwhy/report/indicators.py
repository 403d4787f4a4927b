"""The report's monitoring-indicator table: every indicator of every arm and checkpoint, with its intervals.

Rows come from each checkpoint's ``indicators`` in the summary (:mod:`teachwhy.evals.indicators`); the
pooled ``all`` scope is shown first and each family's rows follow it. Beside the generalisation gap (held-out
minus eval-split rate) each row shows how far the arm's training data is from that family's prompts on each
split (n-gram overlap and nearest-neighbour similarity, :mod:`teachwhy.experiment.ood`).
"""

from __future__ import annotations

from typing import Any

from teachwhy.evals.indicators import ALL, Indicators
from teachwhy.evals.indicators_table import IndicatorRow, indicator_rows
from teachwhy.experiment.summary import ExperimentSummary, OodDistance
from teachwhy.report.render import ci, data_value, pct, points


def _value(row: IndicatorRow, value: float | None) -> str:
    if value is None:
        return "—"
    if row.indicator == "generalisation":
        return points(value)
    if row.indicator == "harmful_tool_calls":
        return f"{value * row.scale:.1f}"
    return pct(value)


def _interval(row: IndicatorRow, low: float | None, high: float | None) -> str:
    if low is None or high is None:
        return "—"
    if row.indicator == "generalisation":
        return f"{points(low)} to {points(high)}"
    if row.indicator == "harmful_tool_calls":
        return f"{low * row.scale:.1f}–{high * row.scale:.1f}"
    return ci(low, high)


def _distance(ood: list[OodDistance], arm: str, scope: str) -> str:
    """``heldout: 0.40% 8-grams, NN 0.41 · eval: …``: the arm's distances to this family (or to all)."""
    found = [o for o in ood if o.arm == arm and (scope == ALL or o.evaluation == scope)]
    parts = []
    for o in sorted(found, key=lambda o: (o.split != "heldout", o.split, o.evaluation)):
        where = " ".join(x for x in (o.evaluation if scope == ALL else "", o.split) if x) or "eval prompts"
        parts.append(f"{where}: {pct(o.ngram_overlap, 2)} {o.ngram_n}-grams, NN {o.nn_similarity_mean:.2f}")
    return " · ".join(parts)


def indicators_context(summary: ExperimentSummary) -> list[dict[str, Any]]:
    """One entry per evaluated checkpoint with indicators: its arm, step, cells and display rows."""
    out = []
    for arm in summary.arms:
        for checkpoint in sorted(arm.checkpoints, key=lambda c: c.step):
            if not checkpoint.indicators:
                continue
            indicators = Indicators.from_dict(checkpoint.indicators)
            rows = []
            for row in indicator_rows(indicators):
                rows.append(
                    {
                        "scope": row.scope,
                        "indicator": row.indicator,
                        "label": row.label,
                        "value": _value(row, row.value),
                        "ci": _interval(row, row.ci_low, row.ci_high),
                        "clustered": _interval(row, row.cluster_ci_low, row.cluster_ci_high),
                        "counts": row.counts,
                        "note": row.note,
                        "data": data_value(row.value),
                        "distance": _distance(summary.ood, arm.name, row.scope)
                        if row.indicator == "generalisation"
                        else "",
                    }
                )
            cells = {s.cells for s in indicators.scopes.values()}
            out.append(
                {
                    "arm": arm.name,
                    "step": checkpoint.step,
                    "split": indicators.split,
                    "compared_split": indicators.compared_split,
                    "cells": ", ".join(sorted(cells)),
                    "rows": [r for r in rows if r["scope"] == ALL],
                    "family_rows": [r for r in rows if r["scope"] != ALL],
                }
            )
    return out
