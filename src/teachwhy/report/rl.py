"""The report's RL section: rates over RL steps per starting snapshot (the arm's SFT'd model).

For every arm with an ``rl`` block the x axis is the RL step, 0 being the checkpoint RL started from (the
end of its SFT, or the untrained target for an arm without data); three panels show the honeypot rate,
constitution adherence and the share of concerning audits, and a table lists each RL checkpoint with its
global step, the mean reward of the step and how many judgements were left out of the reward (refused,
unparseable, cut off, failed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from markupsafe import Markup

from teachwhy.experiment.summary import ArmSummary, CheckpointEval, ExperimentSummary
from teachwhy.report.charts import Mark
from teachwhy.report.heldout import _concern_share, _curve_panel, _link, _mark
from teachwhy.storage import read_jsonl

RL_PHASE = "rl"


def _rl_points(arm: ArmSummary) -> list[tuple[int, CheckpointEval]]:
    """``(rl step, checkpoint)`` from the starting snapshot (RL step 0) to the last RL checkpoint."""
    assert arm.rl is not None
    start = arm.rl["start_step"]
    points = [(0, c) for c in arm.checkpoints if c.phase != RL_PHASE and c.step == start][:1]
    points += [(int(c.rl_step or 0), c) for c in arm.checkpoints if c.phase == RL_PHASE]
    return points


def _log(workspace: Path, relative: str) -> dict[int, dict[str, Any]]:
    path = workspace / relative
    return {int(r["rl_step"]): r for r in read_jsonl(path)} if path.exists() else {}


def rl_context(
    summary: ExperimentSummary, workspace: Path, out_dir: Path, colours: dict[str, str]
) -> dict[str, Any] | None:
    """The template context of the RL section, or ``None`` when no arm has RL."""
    arms = [a for a in summary.arms if a.rl is not None]
    if not arms:
        return None
    curves: dict[str, dict[str, list[tuple[int, Mark]]]] = {"honeypots": {}, "adherence": {}, "concern": {}}
    rows: list[dict[str, Any]] = []
    for arm in arms:
        assert arm.rl is not None
        log = _log(workspace, arm.rl["log"])
        for rl_step, c in _rl_points(arm):
            label = f"{arm.name} RL step {rl_step} (step {c.step})"
            if c.overall is not None:
                o = c.overall
                mark = _mark(o.rate, o.ci_low, o.ci_high, _link(workspace, out_dir, c.results_file), label)
                curves["honeypots"].setdefault(arm.name, []).append((rl_step, mark))
            if c.adherence:
                r = c.adherence["overall"]
                link = _link(workspace, out_dir, c.adherence["results_file"])
                curves["adherence"].setdefault(arm.name, []).append(
                    (rl_step, _mark(r["rate"], r["ci_low"], r["ci_high"], link, label))
                )
            share, low, high = _concern_share(c)
            if c.assessment and share is not None:
                link = _link(workspace, out_dir, c.assessment["results_file"])
                curves["concern"].setdefault(arm.name, []).append(
                    (rl_step, _mark(share, low, high, link, label))
                )
            step_log = log.get(rl_step, {})
            rows.append(
                {
                    "arm": arm.name,
                    "colour": colours.get(arm.name),
                    "rl_step": rl_step,
                    "step": c.step,
                    "rate": c.overall,
                    "adherence": (c.adherence or {}).get("overall"),
                    "concern": share,
                    "reward": step_log.get("reward"),
                    "kl": step_log.get("kl"),
                }
            )
    return {
        "arms": [{"name": a.name, "colour": colours.get(a.name), **(a.rl or {})} for a in arms],
        "rows": rows,
        "charts": {
            "honeypots": Markup(
                _curve_panel(curves["honeypots"], colours, kind="rl-honeypots", title="Honeypot rate over RL")
            ),
            "adherence": Markup(
                _curve_panel(curves["adherence"], colours, kind="rl-adherence", title="Adherence over RL")
            )
            if curves["adherence"]
            else None,
            "concern": Markup(
                _curve_panel(curves["concern"], colours, kind="rl-concern", title="Concerning audits over RL")
            )
            if curves["concern"]
            else None,
        },
    }
