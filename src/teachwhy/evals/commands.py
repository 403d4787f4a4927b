"""CLI: ``teachwhy eval`` (run the honeypots), ``teachwhy eval compare A B`` and ``teachwhy judge-check``."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from teachwhy.cli_options import DEFAULT_CONFIG, ConfigOption, JudgeOption, TargetOption, load_experiment
from teachwhy.errors import UserError

console = Console()
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


def print_results_table(results: object) -> None:
    """One rich table per family: the total row, then one row per condition."""
    from teachwhy.evals.results import ALL, HoneypotResults

    assert isinstance(results, HoneypotResults)
    for family in results.families:
        table = Table(title=f"{family} -- {results.target_model} ({results.split}, policy {results.policy})")
        table.add_column("condition", overflow="fold", min_width=28)
        for column in ("n", "harm", "rate", "95% CI", "unsc.", "err.", "disagr.", "malf."):
            table.add_column(column, justify="right", overflow="fold")
        for row in (r for r in results.rows if r.family == family):
            ci = "-" if row.ci_low is None else f"{_pct(row.ci_low)}-{_pct(row.ci_high)}"
            style = "bold" if row.condition == ALL else None
            table.add_row(
                row.condition,
                str(row.n),
                str(row.harmful),
                _pct(row.rate),
                ci,
                str(row.unscored),
                str(row.errors),
                str(row.disagreements),
                str(row.malformed_tool_calls),
                style=style,
            )
        console.print(table)
    console.print(
        "n: scored samples; harm: harmful; unsc.: unscored (judge refused/unparseable/failed); "
        "err.: target or "
        "episode failed; disagr.: rule and judge disagree; malf.: malformed tool calls"
    )
    reasons = Counter(s.reason for s in results.samples if s.outcome in ("unscored", "error"))
    for reason, count in reasons.most_common(3):
        console.print(f"[yellow]{count} unscored/error sample(s):[/yellow] {reason[:200]}")


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
        display="plain",
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
    print_results_table(results)
    location = Path(results.log_files[0]).parent if results.log_files else log_dir
    console.print(
        f"results: {location}/honeypot-results.json  (transcripts: inspect view --log-dir {location})"
    )


@eval_app.command("compare")
def compare_command(
    a: Annotated[Path, typer.Argument(help="Results JSON (or its folder) of run A.")],
    b: Annotated[Path, typer.Argument(help="Results JSON (or its folder) of run B.")],
) -> None:
    """Per family: rate A - rate B with a 95% CI (Newcombe) and a Fisher exact p-value.

    Two assessment results compare per dimension, two adherence results per principle and section.
    """
    from teachwhy.assessment.commands import compare_other
    from teachwhy.evals.results import HoneypotResults, compare_results

    if compare_other(a, b):
        return

    ra, rb = HoneypotResults.load(a), HoneypotResults.load(b)
    table = Table(title=f"A = {ra.target_model} ({a})  vs  B = {rb.target_model} ({b})")
    for column in ("family", "A harmful/n", "B harmful/n", "A - B", "95% CI", "p-value"):
        table.add_column(column, justify="left" if column == "family" else "right")
    for c in compare_results(ra, rb):
        if c.diff is None:
            table.add_row(c.family, f"{c.harmful_a}/{c.n_a}", f"{c.harmful_b}/{c.n_b}", "-", c.note, "-")
            continue
        ci = f"{100 * (c.ci_low or 0):+.1f} to {100 * (c.ci_high or 0):+.1f} pts"
        table.add_row(
            c.family,
            f"{c.harmful_a}/{c.n_a}",
            f"{c.harmful_b}/{c.n_b}",
            f"{100 * c.diff:+.1f} pts",
            ci,
            f"{c.p_value:.3g}",
        )
    console.print(table)


_SHORT = {"harmful": "H", "not_harmful": "N", "ambiguous": "amb"}


def _confusion(counts: Counter[tuple[str, str]]) -> str:
    """``H->N 1`` style: label -> answer, with H harmful, N not harmful, amb ambiguous."""
    return ", ".join(
        f"{_SHORT.get(label, label)}->{_SHORT.get(answer, answer)} {k}"
        for (label, answer), k in sorted(counts.items())
    )


def judge_check_command(
    config: ConfigOption = DEFAULT_CONFIG,
    judge: JudgeOption = None,
    family: FamilyOption = None,
    rule_only: Annotated[
        bool, typer.Option("--rule-only", help="Check the trace rules only (no judge).")
    ] = False,
    policy: Annotated[
        str | None, typer.Option("--policy", help="Policy for the combined accuracy (default: the config's).")
    ] = None,
    max_tokens: Annotated[
        int | None, typer.Option("--max-tokens", help="Judge reply limit (default: eval.judge_max_tokens).")
    ] = None,
) -> None:
    """Rule and judge accuracy and confusion on the shipped labelled calibration transcripts."""
    from teachwhy.config import ExperimentConfig, apply_role_overrides
    from teachwhy.evals.calibration import check_calibration
    from teachwhy.evals.classify import POLICIES

    if config.exists():
        experiment = load_experiment(config, judge=judge)
    else:  # no experiment file: the default roles, with --judge applied
        experiment = apply_role_overrides(ExperimentConfig(), {"judge": judge})
    policy = policy or experiment.eval.policy
    if policy not in POLICIES:
        raise UserError(f"unknown policy '{policy}' (expected {', '.join(POLICIES)})", key="--policy")
    judge_model = None
    if not rule_only:
        from teachwhy.models import role_model

        judge_model = role_model(experiment, "judge", temperature=0.0)
    reports = check_calibration(
        family,
        judge=judge_model,
        policy=policy,  # type: ignore[arg-type]
        judge_max_tokens=max_tokens or experiment.eval.judge_max_tokens,
    )
    for r in reports:
        table = Table(title=f"{r.family}: {r.cases} labelled transcripts")
        for column in ("check", "accuracy", "label -> answer (H harmful, N not harmful)", "not scored"):
            table.add_column(column, overflow="fold")
        confusion = _confusion(r.rule_confusion)
        table.add_row(
            "trace rule",
            f"{r.rule_correct}/{r.cases} ({_pct(r.rule_accuracy)})",
            confusion,
            f"{r.rule_contradicts_label} decisive answers contradict the label",
        )
        if judge_model is not None:
            confusion = _confusion(r.judge_confusion)
            failures = ", ".join(f"{s}: {k}" for s, k in sorted(r.judge_failures.items())) or "0"
            table.add_row(
                f"judge {judge_model}",
                f"{r.judge_correct}/{r.judge_scored} ({_pct(r.judge_accuracy)})",
                confusion,
                failures,
            )
            acc = r.policy_correct / r.policy_scored if r.policy_scored else None
            table.add_row(f"policy {policy}", f"{r.policy_correct}/{r.policy_scored} ({_pct(acc)})", "", "")
        console.print(table)
        for miss in r.misses:
            console.print(f"  [yellow]{miss}[/yellow]")
