"""Inspect task ``teachwhy/assessment``: audit the evaluated model from every seed and judge each transcript.

The evaluated model (``--model``) is the target; the auditor and the judge are the ``auditor`` and ``judge``
model roles (``--model-role auditor=... --model-role judge=...``; without them the target plays both).
Task parameters (``-T key=value``)::

    seeds=DIR[,DIR]        extra seed folders (Petri-format files load unchanged)
    dimensions=DIR[,DIR]   extra dimension folders
    select=ID|tag:T[,...]  which seeds (default: all)     only=ID[,...]  which dimensions (default: all)
    max_turns=12  auditor_format=auto|native|text  target_format=auto|native|text
    max_tokens=600 (target)  auditor_max_tokens=1200  judge_max_tokens=1500  temperature=0.7
    resources=DIR[,DIR]    your data folders (seeds/, dimensions/, assessment_prompts/: teachwhy.resources)

For example ``inspect eval teachwhy/assessment --model vllm/my-model --model-role auditor=openai/gpt-4o
--model-role judge=openai/gpt-4o -T select=tag:sycophancy``. An audit in which the target was never called
is not judged: its score's answer is ``no_target_call`` and it is counted, not scored.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from inspect_ai import Task, task
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.model import GenerateConfig, get_model
from inspect_ai.scorer import Metric, SampleScore, Score, Scorer, Target, metric, scorer
from inspect_ai.solver import Generate, Solver, TaskState, solver

from teachwhy.assessment.auditor import ToolFormat, run_audit
from teachwhy.assessment.judge import judge_audit
from teachwhy.assessment.library import Dimension, Seed, load_dimensions, load_seeds
from teachwhy.resources import split_folders, use_resources

STORE_KEY = "assessment"


def _names(value: str | Sequence[str] | None) -> list[str]:
    if not value:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    return [i.strip() for i in items if i.strip()]


def seed_sample(seed: Seed) -> Sample:
    """One Inspect sample per seed: the instruction as input, the seed in metadata."""
    return Sample(
        id=seed.id, input=seed.instruction, metadata={"seed": seed.to_metadata(), "meta": seed.meta}
    )


def _seed_of(state: TaskState) -> Seed:
    m = state.metadata["seed"]
    return Seed(
        id=m["seed_id"],
        instruction=state.input_text,
        tags=tuple(m["tags"]),
        description=m["description"],
        path=m["path"],
        sha256=m["sha256"],
    )


@solver
def auditor_agent(
    max_turns: int = 12,
    auditor_format: ToolFormat = "auto",
    target_format: ToolFormat = "auto",
    temperature: float | None = 0.7,
    max_tokens: int | None = 600,
    auditor_max_tokens: int | None = 1200,
    resources: Sequence[str] | None = None,
) -> Solver:
    """Inspect solver: the ``auditor`` role audits the task's model from the sample's seed.

    The target's final branch becomes the sample's messages; every event (rolled-back branches included),
    the counters and how the audit ended go to the sample store under ``"assessment"``. ``resources``: the
    overlay folders the auditor's prompts are read through (``None``: the one in effect).
    """

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        target = get_model()
        auditor = get_model(role="auditor", default=target)
        with use_resources(resources):
            result = await run_audit(
                auditor,
                target,
                _seed_of(state),
                max_turns=max_turns,
                auditor_format=auditor_format,
                target_format=target_format,
                auditor_config=GenerateConfig(max_tokens=auditor_max_tokens),
                target_config=GenerateConfig(temperature=temperature, max_tokens=max_tokens),
            )
        state.messages = result.simulation.conversation()
        state.store.set(STORE_KEY, {**result.summary(), "auditor_model": str(auditor)})
        return state

    return solve


def _values(scores: list[SampleScore], key: str) -> list[float]:
    return [float(v[key]) for s in scores if isinstance(v := s.score.value, dict) and key in v]


@metric
def audits_scored() -> Metric:
    """Audits the judge scored on at least one dimension."""

    def compute(scores: list[SampleScore]) -> float:
        return sum(_values(scores, "scored"))

    return compute


@metric
def no_target_call() -> Metric:
    """Audits in which the auditor never reached the target (counted, not scored)."""

    def compute(scores: list[SampleScore]) -> float:
        return sum(1.0 - v for v in _values(scores, "target_called"))

    return compute


@metric
def concerning_mean() -> Metric:
    """Mean of the ``concerning`` dimension over the audits that have it (NaN when none)."""

    def compute(scores: list[SampleScore]) -> float:
        found = [
            float(x)
            for s in scores
            if (x := ((s.score.metadata or {}).get("scores") or {}).get("concerning")) is not None
        ]
        return sum(found) / len(found) if found else math.nan

    return compute


@scorer(metrics=[audits_scored(), no_target_call(), concerning_mean()])
def assessment_scorer(
    dimensions: str | list[str] | None = None,
    only: str | list[str] | None = None,
    judge_max_tokens: int = 1500,
    resources: Sequence[str] | None = None,
) -> Scorer:
    """Inspect scorer: the ``judge`` role scores the audit the :func:`auditor_agent` ran, on every dimension.

    The score's ``answer`` is ``scored``, ``no_target_call`` or ``judge_<status>`` (``judge_refused``,
    ``judge_unparseable``, ``judge_error``); the per-dimension scores (``None`` where unscored), evidence and
    the judge's summary are in its metadata.
    """
    with use_resources(resources):
        dims: list[Dimension] = load_dimensions(_names(dimensions), select=_names(only) or None)

    async def score(state: TaskState, target: Target) -> Score:
        summary = state.store.get(STORE_KEY)
        base: dict[str, Any] = {
            k: summary[k]
            for k in ("target_calls", "truncated_replies", "rollbacks", "auditor_turns", "malformed_calls")
        }
        base |= {"ended_by": summary["ended_by"], "seed_id": summary["seed_id"]}
        if summary["target_calls"] == 0:
            return Score(
                value={"scored": 0.0, "target_called": 0.0},
                answer="no_target_call",
                explanation="the auditor never sent the target a message: nothing to judge",
                metadata={**base, "scores": {d.id: None for d in dims}, "judge": None},
            )
        judge = get_model(role="judge", default=get_model())
        with use_resources(resources):
            report = await judge_audit(
                judge,
                _seed_of(state),
                dims,
                summary["events"],
                config=GenerateConfig(temperature=0.0, max_tokens=judge_max_tokens),
            )
        scored = any(s.status == "ok" for s in report.scores.values())
        answer = "scored" if scored else f"judge_{report.status}"
        return Score(
            value={"scored": float(scored), "target_called": 1.0},
            answer=answer,
            explanation=report.summary or report.status,
            metadata={
                **base,
                "scores": {k: v.score for k, v in report.scores.items()},
                "judge": report.to_dict(),
                "judge_model": str(judge),
                "dimension_kinds": {d.id: d.kind for d in dims},
            },
        )

    return score


def assessment_task(
    *,
    seed_dirs: Sequence[str] = (),
    dimension_dirs: Sequence[str] = (),
    select: Sequence[str] | None = None,
    only: Sequence[str] | None = None,
    max_turns: int = 12,
    auditor_format: ToolFormat = "auto",
    target_format: ToolFormat = "auto",
    temperature: float | None = 0.7,
    max_tokens: int | None = 600,
    auditor_max_tokens: int | None = 1200,
    judge_max_tokens: int = 1500,
    name: str | None = None,
    resources: Sequence[str] | None = None,
) -> Task:
    """Build the assessment task (the registered ``assessment`` task is a thin wrapper).

    ``resources`` names overlay folders (:mod:`teachwhy.resources`: ``seeds/``, ``dimensions/``,
    ``assessment_prompts/``); without it, the overlay in effect where the task is built is used.
    """
    with use_resources(resources) as overlay:
        seeds = load_seeds(seed_dirs, select=select or None)
        load_dimensions(dimension_dirs, select=only or None)  # a bad folder or selection fails before a call
    folders = [str(f) for f in overlay]
    return Task(
        dataset=MemoryDataset([seed_sample(s) for s in seeds], name="assessment-seeds"),
        solver=auditor_agent(
            max_turns=max_turns,
            auditor_format=auditor_format,
            target_format=target_format,
            temperature=temperature,
            max_tokens=max_tokens,
            auditor_max_tokens=auditor_max_tokens,
            resources=folders,
        ),
        scorer=assessment_scorer(
            dimensions=list(dimension_dirs),
            only=list(only or []),
            judge_max_tokens=judge_max_tokens,
            resources=folders,
        ),
        name=name,
        metadata={
            "seed_dirs": list(seed_dirs),
            "dimension_dirs": list(dimension_dirs),
            "max_turns": max_turns,
            "resources": folders,
        },
    )


@task
def assessment(
    seeds: str | None = None,
    dimensions: str | None = None,
    select: str | None = None,
    only: str | None = None,
    max_turns: int = 12,
    auditor_format: ToolFormat = "auto",
    target_format: ToolFormat = "auto",
    temperature: float = 0.7,
    max_tokens: int = 600,
    auditor_max_tokens: int = 1200,
    judge_max_tokens: int = 1500,
    resources: str | None = None,
) -> Task:
    """Automated alignment assessment: an auditor probes the model from seed instructions; a judge scores."""
    return assessment_task(
        seed_dirs=_names(seeds),
        dimension_dirs=_names(dimensions),
        select=_names(select),
        only=_names(only),
        max_turns=max_turns,
        auditor_format=auditor_format,
        target_format=target_format,
        temperature=temperature,
        max_tokens=max_tokens,
        auditor_max_tokens=auditor_max_tokens,
        judge_max_tokens=judge_max_tokens,
        resources=split_folders(resources) or None,
    )
