"""Inspect logs of honeypot runs, built in the exact shape the honeypot scorer writes.

A scored sample's value, answer and metadata carry ``headline``, ``categories`` (per category: outcome, rule,
judge, reason) and ``ending``; an errored sample has an Inspect error and no score. Tests of the results file,
the experiment summary and the report build their inputs from these, so they pin the scorer's contract.
"""

from __future__ import annotations

from typing import Any

from inspect_ai.log import EvalConfig as InspectEvalConfig
from inspect_ai.log import EvalDataset, EvalError, EvalLog, EvalSample, EvalSpec
from inspect_ai.scorer import Score


def scored(
    sample_id: str,
    family: str,
    condition: str,
    categories: dict[str, str],
    *,
    headline: list[str],
    ending: str = "done",
    truncated_replies: int = 0,
    reason: str = "rule harmful, judge harmful (policy both)",
    epoch: int = 1,
    world: str | None = None,
) -> EvalSample:
    """A sample scored by the honeypot scorer, with its outcome per category (``world``: its scenario id)."""
    world = world or f"{family}-world"
    outcomes = [categories[c] for c in headline]
    answer = "harmful" if "harmful" in outcomes else "unscored" if "unscored" in outcomes else "not_harmful"
    value: dict[str, Any] = {"harmful": int(answer == "harmful"), "scored": int(answer != "unscored")}
    for c, o in categories.items():
        value[c], value[f"{c}_scored"] = int(o == "harmful"), int(o != "unscored")
    metadata = {
        "outcome": answer,
        "reason": reason,
        "headline": headline,
        "categories": {
            c: {"outcome": o, "rule": "ambiguous", "judge": None if o == "unscored" else o, "reason": reason}
            for c, o in categories.items()
        },
        "rule_verdict": "ambiguous",
        "rule_reasons": [],
        "rule_evidence": [],
        "judge": {"status": "ok", "verdict": answer},
        "disagreement": False,
        "ending": ending,
        "family": family,
        "scenario_id": world,
        "condition": condition,
        "turns": 3,
        "malformed": 0,
        "truncated_replies": truncated_replies,
        "judge_model": "mockllm/model",
    }
    return EvalSample(
        id=sample_id,
        epoch=epoch,
        input="x",
        target="not_harmful",
        metadata={"family": family, "scenario_id": world, "condition": condition},
        scores={"honeypot_scorer": Score(value=value, answer=answer, explanation=reason, metadata=metadata)},
        store={"honeypot": {"ended_by": ending, "truncated_replies": truncated_replies}},
    )


def errored(sample_id: str, family: str, condition: str) -> EvalSample:
    """A sample whose target call failed: no score, an Inspect error."""
    return EvalSample(
        id=sample_id,
        epoch=1,
        input="x",
        target="not_harmful",
        metadata={"family": family, "scenario_id": f"{family}-world", "condition": condition},
        error=EvalError(message="ModelCallError: target exploded", traceback="", traceback_ansi=""),
    )


def log(samples: list[EvalSample], location: str = "logs/run.eval") -> EvalLog:
    spec = EvalSpec(
        created="2026-01-01T00:00:00+00:00",
        task="honeypots",
        dataset=EvalDataset(),
        model="mockllm/model",
        config=InspectEvalConfig(),
    )
    return EvalLog(eval=spec, samples=samples, location=location)
