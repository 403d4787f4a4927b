"""``teachwhy eval``'s table of the monitoring indicators (:mod:`teachwhy.evals.indicators`)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from teachwhy.evals.indicators import IndicatorRow, Indicators, indicator_rows

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
