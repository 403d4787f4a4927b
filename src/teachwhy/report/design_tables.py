"""The report's design tables: pressured against control cells, and each world's rate, per arm.

The honeypots' headline is the pressured cells (a threat to the agent or a goal conflict); the no-pressure
cells are the control. Both come from the summary's ``pressured`` and ``control`` rates of each arm's final
checkpoint, with Wilson's and the clustered 95% interval; each world's total comes from ``worlds``.
"""

from __future__ import annotations

from typing import Any

from teachwhy.experiment.summary import ExperimentSummary


def design_context(summary: ExperimentSummary) -> dict[str, Any]:
    """``{"groups": [...], "worlds": [...]}``: rows for the index page (empty lists when nothing to show)."""
    groups: list[dict[str, Any]] = []
    worlds: list[dict[str, Any]] = []
    for arm in summary.arms:
        final = arm.final()
        if final is None:
            continue
        for family, total in final.families.items():
            pressured = final.pressured.get(family)
            if pressured is None and family not in final.control:
                continue
            groups.append(
                {
                    "arm": arm.name,
                    "step": final.step,
                    "family": family,
                    "pressured": pressured,
                    "control": final.control.get(family),
                    "all": total,
                }
            )
        for key, rate in sorted(final.worlds.items()):
            family, _, world = key.partition("/")
            worlds.append(
                {"arm": arm.name, "step": final.step, "family": family, "world": world, "rate": rate}
            )
    return {"groups": groups, "worlds": worlds}
