"""The monitoring indicators (:mod:`teachwhy.evals.indicators`) as display rows, for ``teachwhy eval``'s
table and the report."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table

from teachwhy.evals.indicators import Indicators, Proportion

LABELS: dict[str, str] = {
    "misalignment": "misalignment rate",
    "harmful_tool_calls": "harmful tool calls per 100 calls",
    "episodes_with_harmful_call": "episodes with a harmful tool call",
    "epoch_consistency": "verdict agreement across epochs",
    "paraphrase_consistency": "verdict agreement across paraphrases",
    "generalisation": "held-out − eval-split rate",
}


@dataclass(frozen=True)
class IndicatorRow:
    """One indicator of one scope, ready to print: values are shares (x ``scale`` to show)."""

    scope: str
    indicator: str  # a key of LABELS
    value: float | None
    ci_low: float | None
    ci_high: float | None
    cluster_ci_low: float | None
    cluster_ci_high: float | None
    counts: str  # "3/40", "heldout 3/40 vs eval 1/40", or "n/a: ..."
    scale: int = 100  # 100: shown as a percentage (or per 100 calls)
    note: str = ""  # excluded and failed units, a p-value

    @property
    def label(self) -> str:
        return LABELS[self.indicator]


def _row(scope: str, key: str, p: Proportion | None, missing: str) -> IndicatorRow:
    if p is None:
        return IndicatorRow(scope, key, None, None, None, None, None, f"n/a: {missing}")
    notes = [f"{p.excluded} excluded"] if p.excluded else []
    notes += [f"{p.errors} failed"] if p.errors else []
    interval = (p.ci_low, p.ci_high, p.cluster_ci_low, p.cluster_ci_high)
    return IndicatorRow(scope, key, p.rate, *interval, f"{p.count}/{p.n}", note=", ".join(notes))


def indicator_rows(indicators: Indicators) -> list[IndicatorRow]:
    """Every scope's indicators as rows, ``all`` first; generalisation only where it was measured."""
    rows: list[IndicatorRow] = []
    for scope, s in indicators.scopes.items():
        rows.append(_row(scope, "misalignment", s.misalignment, ""))
        rows.append(_row(scope, "harmful_tool_calls", s.harmful_tool_calls, ""))
        rows.append(_row(scope, "episodes_with_harmful_call", s.episodes_with_harmful_call, ""))
        rows.append(_row(scope, "epoch_consistency", s.epoch_consistency, "one epoch per episode"))
        rows.append(_row(scope, "paraphrase_consistency", s.paraphrase_consistency, "one wording per world"))
        g = s.generalisation
        if g is None:
            continue
        counts = f"heldout {g.heldout.count}/{g.heldout.n} vs eval {g.eval.count}/{g.eval.n}"
        d = g.difference
        if d is None:
            rows.append(IndicatorRow(scope, "generalisation", None, None, None, None, None, counts))
            continue
        rows.append(
            IndicatorRow(
                scope,
                "generalisation",
                d.diff,
                d.ci_low,
                d.ci_high,
                d.cluster_ci_low,
                d.cluster_ci_high,
                counts,
                note=f"p={d.p_value:.3g}",
            )
        )
    return rows


EXPLANATION = (
    "indicators over each family's headline cells (pressured, else all); harmful tool calls: calls the rule "
    "cites for a category judged harmful, per 100 calls in the action log; agreement: share of repeated "
    "episodes (epochs) or of episode-epochs played in several wordings (paraphrases) whose verdicts all "
    "agree; held-out − eval: the generalisation gap (Newcombe CI, Fisher p); excluded: unscored or too few "
    "verdicts, never counted as safe"
)


def _share(value: float | None, row: IndicatorRow, *, signed: bool = False) -> str:
    if value is None:
        return "-"
    number = value * row.scale
    text = f"{number:+.1f}" if signed else f"{number:.1f}"
    return text + ("" if row.indicator == "harmful_tool_calls" else ("pts" if signed else "%"))


def _interval(low: float | None, high: float | None, row: IndicatorRow) -> str:
    signed = row.indicator == "generalisation"
    return "-" if low is None else f"{_share(low, row, signed=signed)} to {_share(high, row, signed=signed)}"


def print_indicators_table(console: Console, data: dict[str, Any] | None, *, title: str) -> None:
    """One row per scope and indicator: value, Wilson (or Newcombe) and clustered 95% CI, counts, notes."""
    if not data:
        return
    indicators = Indicators.from_dict(data)
    table = Table(title=f"{title} -- monitoring indicators ({indicators.split} split)")
    for column in ("scope", "indicator", "value", "95% CI", "clustered CI", "count", "notes"):
        table.add_column(column, justify="left" if column in ("scope", "indicator", "notes") else "right")
    for row in indicator_rows(indicators):
        signed = row.indicator == "generalisation"
        table.add_row(
            row.scope,
            row.label,
            _share(row.value, row, signed=signed),
            _interval(row.ci_low, row.ci_high, row),
            _interval(row.cluster_ci_low, row.cluster_ci_high, row),
            row.counts,
            row.note,
        )
    console.print(table)
    console.print(EXPLANATION)
