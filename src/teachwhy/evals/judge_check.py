"""CLI: ``teachwhy judge-check`` -- the rule gate, a judge and a policy measured against labelled episodes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from teachwhy.cli_options import (
    DEFAULT_CONFIG,
    ConfigOption,
    JudgeOption,
    ResourcesOption,
    load_judge_settings,
)
from teachwhy.errors import UserError
from teachwhy.evals.calibration import CheckReport, Tally, check_cases, families_of, load_cases
from teachwhy.jsonout import emit_json, make_console

console = make_console()


def _interval(t: Tally | None) -> dict[str, Any]:
    return (t or Tally()).to_dict()


def _cell(t: Tally | None) -> str:
    d = _interval(t)
    if not d["n"]:
        return "-"
    return f"{d['k']}/{d['n']} {100 * d['rate']:.1f}% [{100 * d['ci_low']:.0f}-{100 * d['ci_high']:.0f}]"


def report_json(report: CheckReport) -> dict[str, Any]:
    """The report as plain data (every measure with k, n, rate and a Wilson 95% interval)."""
    tables = (
        "gate_recall",
        "gate_specificity",
        "rule_only",
        "judge_accuracy",
        "policy_accuracy",
        "headline_accuracy",
    )
    return {
        "policy": report.policy,
        "judge": report.judge,
        "cases": report.cases,
        "hard_cases": report.hard,
        **{name: {k: _interval(v) for k, v in getattr(report, name).items()} for name in tables},
        "judge_failures": dict(report.judge_failures),
        "unscored": dict(report.unscored),
        "confusion": [
            {"label": a, "outcome": b, "count": n} for (a, b), n in sorted(report.confusion.items())
        ],
        "rule_confusion": [
            {"label": a, "rule": b, "count": n} for (a, b), n in sorted(report.rule_confusion.items())
        ],
        "misclassified": report.misclassified,
    }


def print_report(report: CheckReport, families: list[str]) -> None:
    judged = report.judge is not None
    title = (
        f"{report.cases} labelled episodes ({report.hard} hard) -- policy {report.policy}, "
        f"judge {report.judge or 'none (rule only)'}; k/n, rate [Wilson 95%]"
    )
    table = Table(title=title)
    for column in (
        "scope",
        "gate recall",
        "gate specificity",
        "rule only",
        "judge",
        "policy",
        "policy (headline)",
    ):
        table.add_column(column, overflow="fold")
    scopes = [
        "all",
        *[s for f in families for s in (f, *sorted(k for k in report.gate_recall if k.startswith(f + "/")))],
    ]
    for extra in sorted(k for k in report.gate_specificity if "/" in k and k not in scopes):
        scopes.append(extra)
    for scope in scopes:
        table.add_row(
            scope,
            _cell(report.gate_recall.get(scope)),
            _cell(report.gate_specificity.get(scope)),
            _cell(report.rule_only.get(scope)),
            _cell(report.judge_accuracy.get(scope)) if judged else "-",
            _cell(report.policy_accuracy.get(scope)),
            _cell(report.headline_accuracy.get(scope)),
        )
    console.print(table)
    console.print(
        "gate recall: harmful (case, category) pairs the rule touched; gate specificity: not-harmful pairs "
        "it did not call harmful; rule only / policy: pairs whose outcome equals the label "
        "(unscored counts as wrong)."
    )
    confusion = Table(title=f"label -> policy {report.policy} outcome (and rule verdict)")
    for column in (
        "label",
        "harmful",
        "not_harmful",
        "unscored",
        "rule harmful",
        "rule ambiguous",
        "rule not_harmful",
    ):
        confusion.add_column(column)
    for label in ("harmful", "not_harmful"):
        confusion.add_row(
            label,
            *(str(report.confusion[(label, o)]) for o in ("harmful", "not_harmful", "unscored")),
            *(str(report.rule_confusion[(label, r)]) for r in ("harmful", "ambiguous", "not_harmful")),
        )
    console.print(confusion)
    if report.judge_failures:
        console.print(
            "judge gave no verdict: "
            + ", ".join(f"{k} {v}" for k, v in sorted(report.judge_failures.items()))
        )
    if report.misclassified:
        console.print(f"[yellow]{len(report.misclassified)} misclassified (case/category):[/yellow]")
        for line in report.misclassified:
            console.print(f"  {line}")


def judge_check_command(
    config: ConfigOption = DEFAULT_CONFIG,
    judge: JudgeOption = None,
    family: Annotated[
        list[str] | None,
        typer.Option("--family", "-f", help="blackmail, research_sabotage or framing (repeatable)."),
    ] = None,
    cases: Annotated[
        Path | None,
        typer.Option(
            "--cases",
            help="A folder of calibration files in the documented format (default: the shipped set and the "
            "`calibration/` files of the resources folders).",
        ),
    ] = None,
    rule_only: Annotated[
        bool, typer.Option("--rule-only", help="Check the rule gate only (no judge).")
    ] = False,
    oracle: Annotated[
        bool,
        typer.Option(
            "--oracle-judge", help="Use the labels as the judge: the policy's ceiling with a perfect judge."
        ),
    ] = False,
    policy: Annotated[
        str | None, typer.Option("--policy", help="Policy to check (default: the config's eval.policy).")
    ] = None,
    max_tokens: Annotated[
        int | None, typer.Option("--max-tokens", help="Judge reply limit (default: eval.judge_max_tokens).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    resources: ResourcesOption = None,
) -> None:
    """Rule gate recall and specificity, judge accuracy per category and policy accuracy against labelled
    episodes, with Wilson intervals, the confusion table and the misclassified ids."""
    from teachwhy.evals.classify import POLICIES

    experiment = load_judge_settings(config, judge, resources)
    policy = policy or experiment.eval.policy
    if policy not in POLICIES:
        raise UserError(f"unknown policy '{policy}' (expected {', '.join(POLICIES)})", key="--policy")
    if rule_only and oracle:
        raise UserError("choose one of --rule-only and --oracle-judge", key="--oracle-judge")
    replayed = load_cases(cases)
    if family:
        unknown = sorted(set(family) - set(families_of(replayed)))
        if unknown:
            raise UserError(f"no cases for family {', '.join(unknown)}", key="--family")
        replayed = [c for c in replayed if c.episode.family in family]
    judge_model: Any = None
    if oracle:
        judge_model = "oracle"
    elif not rule_only:
        from teachwhy.models import role_model

        judge_model = role_model(experiment, "judge", temperature=0.0)
    report = check_cases(
        replayed,
        policy=policy,  # type: ignore[arg-type]
        judge=judge_model,
        judge_max_tokens=max_tokens or experiment.eval.judge_max_tokens,
    )
    if as_json:
        emit_json(report_json(report))
    else:
        print_report(report, families_of(replayed))
