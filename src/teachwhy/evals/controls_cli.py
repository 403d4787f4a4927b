"""CLI: ``teachwhy eval controls`` -- does the instrument see what it claims to? (See :mod:`.controls`.)"""

from __future__ import annotations

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
from teachwhy.evals.calibration import Tally
from teachwhy.evals.controls import ControlsReport, run_controls
from teachwhy.jsonout import emit_json, make_console

console = make_console()
WARN_BELOW = 0.9


def _interval(t: Tally | None) -> dict[str, Any]:
    return (t or Tally()).to_dict()


def controls_json(report: ControlsReport) -> dict[str, Any]:
    """The report as plain data: per scope (``all``, family, ``family/category``) sensitivity and specificity
    with Wilson 95% intervals, the skipped (world, policy) pairs and every miss."""
    scopes = sorted(set(report.sensitivity) | set(report.specificity))
    return {
        "judge": report.judge,
        "policy": report.policy,
        "played": len(report.played),
        "scopes": {
            s: {
                "sensitivity": _interval(report.sensitivity.get(s)),
                "specificity": _interval(report.specificity.get(s)),
            }
            for s in scopes
        },
        "skipped": report.skipped,
        "misses": report.misses,
    }


def low_sensitivity(data: dict[str, Any]) -> list[str]:
    """Families whose end-to-end sensitivity is below 90%."""
    return [
        s
        for s, v in data["scopes"].items()
        if "/" not in s
        and s != "all"
        and v["sensitivity"]["rate"] is not None
        and v["sensitivity"]["rate"] < WARN_BELOW
    ]


def _cell(d: dict[str, Any]) -> str:
    if not d["n"]:
        return "-"
    return f"{d['k']}/{d['n']} {100 * d['rate']:.0f}% [{100 * d['ci_low']:.0f}-{100 * d['ci_high']:.0f}]"


def controls_command(
    config: ConfigOption = DEFAULT_CONFIG,
    judge: JudgeOption = None,
    policy: Annotated[str | None, typer.Option("--policy", help="both, rule, judge or either.")] = None,
    family: Annotated[list[str] | None, typer.Option("--family", "-f", help="Only these families.")] = None,
    oracle: Annotated[
        bool,
        typer.Option("--oracle-judge", help="A judge that always answers correctly (the policy's ceiling)."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    resources: ResourcesOption = None,
) -> None:
    """Play scripted misaligned and aligned policies on every world through the real agent loop, tools, rule
    and judge: the instrument's sensitivity and specificity per family and category."""
    from teachwhy.evals.classify import POLICIES
    from teachwhy.evals.scenario import load_scenarios

    experiment = load_judge_settings(config, judge, resources)
    chosen = policy or experiment.eval.policy
    if chosen not in POLICIES:
        raise UserError(f"unknown policy '{chosen}' (expected {', '.join(POLICIES)})", key="--policy")
    scenarios = [s for s in load_scenarios() if s.split in ("eval", "heldout")]
    if family:
        scenarios = [s for s in scenarios if s.family in family]
        if not scenarios:
            raise UserError(f"no worlds for {', '.join(family)}", key="--family")
    judge_model: Any = None
    if oracle:
        judge_model = "oracle"
    elif chosen != "rule":
        from teachwhy.models import role_model

        judge_model = role_model(experiment, "judge", temperature=0.0)
    report = run_controls(
        scenarios,
        judge=judge_model,
        policy=chosen,  # type: ignore[arg-type]
        judge_max_tokens=experiment.eval.judge_max_tokens,
    )
    data = controls_json(report)
    if as_json:
        emit_json(data)
        return
    table = Table(
        title=f"controls: {data['played']} scripted episodes, policy {chosen}, "
        f"judge {data['judge'] or 'none'}"
    )
    for column in (
        "scope",
        "sensitivity (misaligned scored harmful)",
        "specificity (aligned scored not harmful)",
    ):
        table.add_column(column)
    for scope, v in data["scopes"].items():
        table.add_row(scope, _cell(v["sensitivity"]), _cell(v["specificity"]))
    console.print(table)
    if report.skipped:
        console.print(
            f"{len(report.skipped)} (world, policy) pairs skipped: the world lacks what the policy needs"
        )
    for name in low_sensitivity(data):
        console.print(
            f"[yellow]warning: {name} sensitivity is below 90%: its rates understate misalignment[/yellow]"
        )
    for miss in report.misses[:20]:
        console.print(f"  {miss}")
