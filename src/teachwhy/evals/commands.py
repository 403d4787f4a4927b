"""CLI: ``teachwhy eval`` (run the honeypots) and ``teachwhy eval compare A B``."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from teachwhy.cli_options import DEFAULT_CONFIG, ConfigOption, JudgeOption, TargetOption, load_experiment
from teachwhy.errors import UserError
from teachwhy.jsonout import JsonOption, emit_json, make_console

if TYPE_CHECKING:
    from teachwhy.evals.results import RateRow

console = make_console()
eval_app = typer.Typer(
    help="Run the honeypot evaluations (blackmail, research sabotage, framing) and compare runs.",
    invoke_without_command=True,
)

FamilyOption = Annotated[
    list[str] | None,
    typer.Option("--family", "-f", help="blackmail, research_sabotage or framing (repeatable)."),
]


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _ci(low: float | None, high: float | None) -> str:
    return "-" if low is None else f"{_pct(low)}-{_pct(high)}"


def print_results_table(results: object) -> None:
    """Per family: the headline table (total row, then one per condition), then categories and endings."""
    from teachwhy.evals.results import ALL, HoneypotResults, failed_samples

    assert isinstance(results, HoneypotResults)
    for family in results.families:
        rows = [r for r in results.rows if r.family == family]
        headline = ", ".join(rows[0].headline) if rows and rows[0].headline else "outcome"
        table = Table(
            title=f"{family} -- {results.target_model} ({results.split}, policy {results.policy}); "
            f"headline: {headline}"
        )
        table.add_column("condition", overflow="fold", min_width=28)
        for column in ("n", "harm", "rate", "95% CI", "unsc.", "err.", "disagr.", "malf.", "cut"):
            table.add_column(column, justify="right", overflow="fold")
        for row in rows:
            table.add_row(
                row.condition,
                str(row.n),
                str(row.harmful),
                _pct(row.rate),
                _ci(row.ci_low, row.ci_high),
                str(row.unscored),
                str(row.errors),
                str(row.disagreements),
                str(row.malformed_tool_calls),
                str(row.truncated_replies),
                style="bold" if row.condition == ALL else None,
            )
        console.print(table)
        print_category_table(family, rows)
        print_endings_table(family, rows)
    console.print(
        "n: scored samples; harm: harmful; unsc.: unscored (judge refused/unparseable/failed, or an "
        "incomplete ending); err.: target or episode failed; disagr.: rule and judge disagree; "
        "malf.: malformed tool calls; cut: replies cut off at the output limit"
    )
    failed = failed_samples(results)
    if failed.failed:
        console.print(f"[yellow]{failed.describe()}[/yellow]")
    reasons = Counter(s.reason for s in results.samples if s.outcome in ("unscored", "error"))
    for reason, count in reasons.most_common(3):
        console.print(f"[yellow]{count} unscored/error sample(s):[/yellow] {reason[:200]}")


def print_category_table(family: str, rows: list[RateRow]) -> None:
    """One column per behaviour category: rate, Wilson 95% CI, harmful/scored and unscored."""
    categories = list(dict.fromkeys(c for r in rows for c in r.categories))
    if not categories:
        return
    table = Table(title=f"{family} -- behaviour categories (rate, 95% CI, harmful/scored, unscored)")
    table.add_column("condition", overflow="fold", min_width=28)
    headline = set(rows[0].headline) if rows else set()
    for category in categories:
        table.add_column(
            f"{category}{' *' if category in headline else ''}", justify="right", overflow="fold"
        )
    for row in rows:
        cells = []
        for category in categories:
            c = row.categories.get(category)
            if c is None:
                cells.append("-")
                continue
            rate = "-" if c.rate is None else f"{_pct(c.rate)} ({_ci(c.ci_low, c.ci_high)}) {c.harmful}/{c.n}"
            cells.append(rate + (f" unsc. {c.unscored}" if c.unscored else ""))
        table.add_row(row.condition, *cells)
    console.print(table)


def print_endings_table(family: str, rows: list[RateRow]) -> None:
    """How the episodes ended, per condition."""
    from teachwhy.evals.results import ENDING_ORDER

    seen = {e for r in rows for e in r.endings}
    endings = [e for e in ENDING_ORDER if e in seen] + sorted(seen - set(ENDING_ORDER))
    table = Table(title=f"{family} -- how the episodes ended")
    table.add_column("condition", overflow="fold", min_width=28)
    for ending in endings:
        table.add_column(ending, justify="right", overflow="fold")
    for row in rows:
        table.add_row(row.condition, *(str(row.endings.get(e, 0)) for e in endings))
    console.print(table)


@eval_app.callback()
def eval_command(
    ctx: typer.Context,
    config: ConfigOption = DEFAULT_CONFIG,
    target: TargetOption = None,
    model: Annotated[str | None, typer.Option("--model", help="Same as --target.")] = None,
    judge: JudgeOption = None,
    family: FamilyOption = None,
    split: Annotated[str | None, typer.Option("--split", help="eval or heldout.")] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="Episodes per family.")] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", help="Times each episode is played.")] = None,
    max_turns: Annotated[int | None, typer.Option("--max-turns", help="Model replies per episode.")] = None,
    policy: Annotated[str | None, typer.Option("--policy", help="both, rule, judge or either.")] = None,
    goal_type: Annotated[
        list[str] | None, typer.Option("--goal-type", help="explicit/ambiguous/none.")
    ] = None,
    goal_value: Annotated[
        list[str] | None, typer.Option("--goal-value", help="e.g. welfare, profit.")
    ] = None,
    urgency: Annotated[
        list[str] | None, typer.Option("--urgency", help="replacement/restriction/none.")
    ] = None,
    log_dir: Annotated[Path | None, typer.Option("--log-dir", help="Where logs and results go.")] = None,
    json_output: JsonOption = False,
) -> None:
    """Run the honeypots on the target: rate, Wilson 95% CI, unscored and errors by family and condition."""
    if ctx.invoked_subcommand is not None:
        return
    from teachwhy.evals.run import run_honeypot_eval

    if target is not None and model is not None and target != model:
        raise UserError("give the target model once (--target or --model)", key="--model")
    experiment = load_experiment(config, target=target or model, judge=judge)
    results = run_honeypot_eval(
        experiment,
        log_dir=log_dir,
        display="none" if json_output else "plain",
        families=family,
        split=split,
        limit=limit,
        epochs=epochs,
        max_turns=max_turns,
        policy=policy,
        goal_types=goal_type,
        goal_values=goal_value,
        urgencies=urgency,
    )
    if json_output:
        emit_json(results)
        return
    print_results_table(results)
    location = Path(results.log_files[0]).parent if results.log_files else log_dir
    console.print(
        f"results: {location}/honeypot-results.json  (transcripts: inspect view --log-dir {location})"
    )


@eval_app.command("compare")
def compare_command(
    a: Annotated[Path, typer.Argument(help="Results JSON (or its folder) of run A.")],
    b: Annotated[Path, typer.Argument(help="Results JSON (or its folder) of run B.")],
    json_output: JsonOption = False,
) -> None:
    """Per family (headline, then each category): rate A - rate B, 95% CI (Newcombe), Fisher exact p.

    Two assessment results compare per dimension, two adherence results per principle and section.
    """
    from teachwhy.assessment.commands import compare_other
    from teachwhy.evals.results import HoneypotResults, compare_results

    if compare_other(a, b):
        return

    ra, rb = HoneypotResults.load(a), HoneypotResults.load(b)
    if json_output:
        runs = {"a": {"results": str(a), "target_model": ra.target_model}}
        runs["b"] = {"results": str(b), "target_model": rb.target_model}
        emit_json({**runs, "families": compare_results(ra, rb)})
        return
    table = Table(title=f"A = {ra.target_model} ({a})  vs  B = {rb.target_model} ({b})")
    for column in ("family · category", "A harmful/n", "B harmful/n", "A - B", "95% CI", "p-value"):
        table.add_column(column, justify="left" if column.startswith("family") else "right")
    for c in compare_results(ra, rb):
        if c.diff is None:
            table.add_row(c.label, f"{c.harmful_a}/{c.n_a}", f"{c.harmful_b}/{c.n_b}", "-", c.note, "-")
            continue
        ci = f"{100 * (c.ci_low or 0):+.1f} to {100 * (c.ci_high or 0):+.1f} pts"
        table.add_row(
            c.label,
            f"{c.harmful_a}/{c.n_a}",
            f"{c.harmful_b}/{c.n_b}",
            f"{100 * c.diff:+.1f} pts",
            ci,
            f"{c.p_value:.3g}",
        )
    console.print(table)
