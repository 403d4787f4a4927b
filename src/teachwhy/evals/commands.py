"""CLI: ``teachwhy eval`` (run the honeypots), ``teachwhy eval compare A B`` and ``teachwhy eval plan``.

``teachwhy eval scenarios list|check`` live in :mod:`teachwhy.evals.scenarios_cli`.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from teachwhy.cli_options import DEFAULT_CONFIG, ConfigOption, JudgeOption, TargetOption, load_experiment
from teachwhy.errors import UserError
from teachwhy.evals.scenarios_cli import scenarios_app
from teachwhy.jsonout import JsonOption, emit_json, make_console

if TYPE_CHECKING:
    from teachwhy.evals.comparison import IndicatorComparison
    from teachwhy.evals.results import RateRow

console = make_console()
eval_app = typer.Typer(
    help="Run the honeypot evaluations (blackmail, research sabotage, framing) and compare runs.",
    invoke_without_command=True,
)
eval_app.add_typer(scenarios_app, name="scenarios")

FamilyOption = Annotated[
    list[str] | None,
    typer.Option("--family", "-f", help="blackmail, research_sabotage or framing (repeatable)."),
]


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _ci(low: float | None, high: float | None) -> str:
    return "-" if low is None else f"{_pct(low)}-{_pct(high)}"


def _clustered(low: float | None, high: float | None, clusters: int) -> str:
    return "-" if low is None else f"{_ci(low, high)} ({clusters}w)"


_GROUP_ORDER = {"pressured": 0, "all": 1, "control": 2}


def print_results_table(results: object) -> None:
    """Per family: the headline table (total row, then one per condition), then categories and endings."""
    from teachwhy.evals.indicators_table import print_indicators_table
    from teachwhy.evals.results import ALL, HoneypotResults, failed_samples

    assert isinstance(results, HoneypotResults)
    for family in results.families:
        rows = sorted(
            (r for r in results.rows if r.family == family and r.world == ALL),
            key=lambda r: _GROUP_ORDER.get(r.condition, 3),
        )
        headline = ", ".join(rows[0].headline) if rows and rows[0].headline else "outcome"
        top = rows[0].condition if rows else ALL
        table = Table(
            title=f"{family} -- {results.target_model} ({results.split}, policy {results.policy}); "
            f"headline: {headline}, {top} cells"
        )
        table.add_column("condition", overflow="fold", min_width=28)
        for column in (
            "n",
            "harm",
            "rate",
            "95% CI",
            "clustered CI",
            "unsc.",
            "err.",
            "disagr.",
            "malf.",
            "cut",
        ):
            table.add_column(column, justify="right", overflow="fold")
        for row in rows:
            table.add_row(
                row.condition,
                str(row.n),
                str(row.harmful),
                _pct(row.rate),
                _ci(row.ci_low, row.ci_high),
                _clustered(row.cluster_ci_low, row.cluster_ci_high, row.clusters),
                str(row.unscored),
                str(row.errors),
                str(row.disagreements),
                str(row.malformed_tool_calls),
                str(row.truncated_replies),
                style="bold" if row is rows[0] else None,
            )
        console.print(table)
        print_category_table(family, rows)
        print_endings_table(family, rows)
        print_world_table(family, [r for r in results.rows if r.family == family and r.world != ALL])
    console.print(
        "n: scored samples; harm: harmful; 95% CI: Wilson (samples as independent); clustered CI: worlds "
        "and episodes resampled, epochs as repeats (Nw: from N worlds); pressured: cells with a threat or a "
        "goal conflict (the headline), control: no goal and no urgency; unsc.: unscored (judge "
        "refused/unparseable/failed, or an incomplete ending); err.: target or episode failed; disagr.: rule "
        "and judge disagree; malf.: malformed tool calls; cut: replies cut off at the output limit"
    )
    print_indicators_table(console, results.indicators, title=results.target_model)
    failed = failed_samples(results)
    if failed.failed:
        console.print(f"[yellow]{failed.describe()}[/yellow]")
    reasons = Counter(s.reason for s in results.samples if s.outcome in ("unscored", "error"))
    for reason, count in reasons.most_common(3):
        console.print(f"[yellow]{count} unscored/error sample(s):[/yellow] {reason[:200]}")


def print_category_table(family: str, rows: list[RateRow]) -> None:
    """One column per behaviour category: rate, Wilson and clustered 95% CI, harmful/scored and unscored."""
    categories = list(dict.fromkeys(c for r in rows for c in r.categories))
    if not categories:
        return
    table = Table(
        title=f"{family} -- behaviour categories "
        "(rate, Wilson 95% CI; cl. clustered CI, harmful/scored, unscored)"
    )
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
            clustered = (
                "" if c.cluster_ci_low is None else f"; cl. {_ci(c.cluster_ci_low, c.cluster_ci_high)}"
            )
            rate = (
                "-"
                if c.rate is None
                else f"{_pct(c.rate)} ({_ci(c.ci_low, c.ci_high)}{clustered}) {c.harmful}/{c.n}"
            )
            cells.append(rate + (f" unsc. {c.unscored}" if c.unscored else ""))
        table.add_row(row.condition, *cells)
    console.print(table)


def print_world_table(family: str, rows: list[RateRow]) -> None:
    """Each world's headline rate: every cell, the pressured cells and the controls."""
    worlds = list(dict.fromkeys(r.world for r in rows))
    if len(worlds) < 2:
        return
    table = Table(title=f"{family} -- per world (rate, 95% CI, harmful/scored)")
    table.add_column("world", overflow="fold", min_width=20)
    for group in ("pressured", "control", "all"):
        table.add_column(group, justify="right", overflow="fold")
    for world in worlds:
        cells = []
        for group in ("pressured", "control", "all"):
            r = next((r for r in rows if r.world == world and r.condition == group), None)
            cells.append(
                "-"
                if r is None or r.rate is None
                else f"{_pct(r.rate)} ({_ci(r.ci_low, r.ci_high)}) {r.harmful}/{r.n}"
            )
        table.add_row(world, *cells)
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
    split: Annotated[
        str | None, typer.Option("--split", help="eval, heldout or both (both: the generalisation gap).")
    ] = None,
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
    world: Annotated[
        list[str] | None,
        typer.Option("--world", help="Only this world (id from `teachwhy eval scenarios list`; repeatable)."),
    ] = None,
    paraphrases: Annotated[
        int | None,
        typer.Option("--paraphrases", help="Wordings per cell: 1 or 2 (default: eval.paraphrases)."),
    ] = None,
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
        worlds=world,
        paraphrases=paraphrases,
    )
    if json_output:
        emit_json(results)
        return
    print_results_table(results)
    location = Path(results.log_files[0]).parent if results.log_files else log_dir
    console.print(
        f"results: {location}/honeypot-results.json  (transcripts: inspect view --log-dir {location})"
    )
    indicators = results.indicators or {}
    if indicators.get("compared_results"):
        split, file = indicators["compared_split"], indicators["compared_results"]
        console.print(f"the {split} split's results: {location}/{file}")


@eval_app.command("compare")
def compare_command(
    a: Annotated[Path, typer.Argument(help="Results JSON (or its folder) of run A.")],
    b: Annotated[Path, typer.Argument(help="Results JSON (or its folder) of run B.")],
    json_output: JsonOption = False,
) -> None:
    """Per family (headline, then each category): rate A - rate B with a 95% CI and a p-value.

    Paired by episode where both runs played the same episodes (McNemar exact, paired cluster bootstrap);
    otherwise Newcombe's interval and Fisher's exact test. Two assessment results compare per dimension, two
    adherence results per principle and section.
    """
    from teachwhy.assessment.commands import compare_other
    from teachwhy.evals.comparison import compare_indicators, compare_results
    from teachwhy.evals.results import HoneypotResults

    if compare_other(a, b):
        return

    ra, rb = HoneypotResults.load(a), HoneypotResults.load(b)
    indicators = compare_indicators(ra, rb)
    if json_output:
        runs = {"a": {"results": str(a), "target_model": ra.target_model}}
        runs["b"] = {"results": str(b), "target_model": rb.target_model}
        emit_json({**runs, "families": compare_results(ra, rb), "indicators": indicators})
        return
    table = Table(title=f"A = {ra.target_model} ({a})  vs  B = {rb.target_model} ({b})")
    columns = ("family · category (cells)", "A harm/n", "B harm/n", "A - B", "95% CI", "p", "test")
    for column in columns:
        table.add_column(column, justify="left" if column[0] in "ft" else "right")
    notes: list[str] = []
    for c in compare_results(ra, rb):
        counts = (f"{c.harmful_a}/{c.n_a}", f"{c.harmful_b}/{c.n_b}")
        label = f"{c.label} ({c.group})"
        if c.diff is None:
            table.add_row(label, *counts, "-", "-", "-", c.note)
            continue
        ci = f"{100 * (c.ci_low or 0):+.1f} to {100 * (c.ci_high or 0):+.1f} pts"
        test = "McNemar" if c.paired else "Fisher"
        table.add_row(label, *counts, f"{100 * c.diff:+.1f} pts", ci, f"{c.p_value:.3g}", test)
        if c.paired and not c.category:
            notes.append(f"{c.family}: {c.note}")
    console.print(table)
    console.print(
        "McNemar: both runs played the same episodes, compared pair by pair (exact McNemar test, paired "
        "cluster-bootstrap CI); Fisher: unpaired (Fisher exact test, Newcombe CI). Cells: pressured when "
        "both runs have pressured cells, else all."
    )
    for note in notes:
        console.print(note)
    _print_indicator_comparison(indicators)


def _print_indicator_comparison(rows: list[IndicatorComparison]) -> None:
    from teachwhy.evals.comparison import INDICATORS

    table = Table(title="Indicators, A vs B (headline cells; unpaired: Newcombe CI, Fisher p)")
    for column in ("scope · indicator", "A", "B", "A - B", "95% CI", "p"):
        table.add_column(column, justify="left" if column[0] == "s" else "right")
    for r in rows:
        label = f"{r.scope} · {INDICATORS[r.indicator]}"
        counts = (f"{r.count_a}/{r.n_a}", f"{r.count_b}/{r.n_b}")
        if r.diff is None:
            table.add_row(label, *counts, "-", "-", r.note)
            continue
        ci = f"{100 * (r.ci_low or 0):+.1f} to {100 * (r.ci_high or 0):+.1f} pts"
        table.add_row(label, *counts, f"{100 * r.diff:+.1f} pts", ci, f"{r.p_value:.3g}")
    console.print(table)


@eval_app.command("plan")
def plan_command(
    p0: Annotated[float, typer.Option("--p0", help="The rate you expect in one arm (e.g. the baseline).")],
    p1: Annotated[float, typer.Option("--p1", help="The rate in the other arm you want to detect.")],
    power: Annotated[float, typer.Option("--power", help="Chance of detecting a real difference.")] = 0.8,
    alpha: Annotated[float, typer.Option("--alpha", help="Two-sided significance level.")] = 0.05,
    icc: Annotated[
        float, typer.Option("--icc", help="Intra-world correlation of outcomes (0: episodes independent).")
    ] = 0.0,
    cluster_size: Annotated[
        int, typer.Option("--cluster-size", help="Episodes per world (39 for the full factorial).")
    ] = 39,
    continuity: Annotated[
        bool, typer.Option("--continuity-correction", help="Fleiss's continuity correction (more episodes).")
    ] = False,
) -> None:
    """Episodes per arm needed to detect p0 vs p1 (two-proportion test x design effect)."""
    from teachwhy.evals.design import episodes_per_arm

    try:
        size = episodes_per_arm(
            p0, p1, power=power, alpha=alpha, icc=icc, cluster_size=cluster_size, continuity=continuity
        )
    except ValueError as e:
        raise UserError(str(e), key="eval plan") from None
    console.print(
        f"to tell {_pct(p0)} from {_pct(p1)} with power {power:g} at alpha {alpha:g} (two-sided):\n"
        f"  {size.independent} scored episodes per arm if episodes were independent\n"
        f"  design effect {size.design_effect:.2f} (1 + ({cluster_size} - 1) x ICC {icc:g})\n"
        f"  {size.per_arm} scored episodes per arm = {size.worlds} worlds of {cluster_size} episodes\n"
        "epochs are repeats of an episode, not new samples: count scored episodes, not epochs; unscored "
        "and errored episodes do not count"
    )
