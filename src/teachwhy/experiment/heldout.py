"""The held-out evaluations beside the honeypots at every checkpoint: the assessment and adherence stages.

When ``eval.assessment.enabled`` / ``eval.adherence.enabled`` are set, every checkpoint the honeypots
evaluate (step 0 included) also gets an ``assessment/<name>`` and an ``adherence/<name>`` stage. Each is a
content-addressed stage like the others: its key hashes its settings, the model roles, the checkpoint, and
the exact seeds and dimensions (assessment) or the frozen situations' key (adherence), so a finished one is
never run again. Their summaries are attached to the checkpoint's honeypot result under ``assessment`` and
``adherence`` and reach ``summary.json`` through :class:`~teachwhy.experiment.summary.CheckpointEval`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inspect_ai.model import Model

from teachwhy.experiment.stages import StageContext

if TYPE_CHECKING:
    from teachwhy.experiment.pipeline import ExperimentPipeline


@contextmanager
def checkpoint_target(
    pipeline: ExperimentPipeline, model: str, step: int, temperature: float
) -> Iterator[Model]:
    """The target at a checkpoint: the target role at step 0, else the checkpoint (unshared, closed after)."""
    from teachwhy.models import role_model
    from teachwhy.models.roles import resolve_model

    if step == 0:
        yield role_model(pipeline.config, "target", temperature=temperature)
        return
    role = pipeline.config.models.target.model_copy(update={"model": model})
    with resolve_model(role, name="target", temperature=temperature, memoize=False) as target:
        yield target


def _roles(pipeline: ExperimentPipeline, names: tuple[str, ...]) -> dict[str, Any]:
    return {r: pipeline.config.models.role(r).model_dump(mode="json") for r in names}


def _base_inputs(pipeline: ExperimentPipeline, model: str, step: int) -> dict[str, Any]:
    inputs: dict[str, Any] = {
        "model": model if step == 0 else f"checkpoint-{step}",
        "max_connections": pipeline.config.generation.max_connections,
    }
    if step == 0:
        inputs["target"] = pipeline.config.models.target.model_dump(mode="json")
    return inputs


def assessment_stage(
    pipeline: ExperimentPipeline, name: str, model: str, *, step: int, after: list[dict[str, Any] | None]
) -> dict[str, Any] | None:
    """Run (or recall) the assessment of one checkpoint; ``None`` in a dry run that has not finished it."""
    from teachwhy.assessment.library import library_hash, load_dimensions, load_seeds
    from teachwhy.assessment.run import resource_dirs

    config = pipeline.config
    settings = config.eval.assessment
    seeds = load_seeds(resource_dirs(config, settings.seed_dirs), select=settings.seeds)
    dims = load_dimensions(resource_dirs(config, settings.dimension_dirs), select=settings.dimensions)
    inputs = {
        **_base_inputs(pipeline, model, step),
        "assessment": settings.model_dump(mode="json"),
        "roles": _roles(pipeline, ("auditor", "judge")),
        "library": library_hash(seeds, dims),
        "package_data": _package_hash("assessment"),
    }

    def work(ctx: StageContext) -> dict[str, Any]:
        from teachwhy.assessment.run import run_assessment

        with checkpoint_target(pipeline, model, step, settings.temperature) as target:
            results = run_assessment(config, target=target, log_dir=ctx.dir, display=pipeline.eval_display)
        return {
            "results_file": ctx.relative(ctx.dir / "assessment-results.json"),
            "log_files": [ctx.relative(ctx.dir / Path(f).name) for f in results.log_files],
            "counts": results.counts,
            "concern_threshold": results.concern_threshold,
            "dimensions": [d.__dict__ for d in results.dimensions],
        }

    return pipeline.runner.stage("assessment", name, inputs, work, after=after, detail=f"target={model}")


def adherence_stage(
    pipeline: ExperimentPipeline, name: str, model: str, *, step: int, after: list[dict[str, Any] | None]
) -> dict[str, Any] | None:
    """Run (or recall) the adherence evaluation of one checkpoint on the workspace's frozen situations."""
    from teachwhy.adherence.situations import situations_key

    config = pipeline.config
    settings = config.eval.adherence
    inputs = {
        **_base_inputs(pipeline, model, step),
        "adherence": settings.model_dump(mode="json"),
        "roles": _roles(pipeline, ("judge",)),
        "situations": situations_key(
            pipeline.constitution, settings.situations_per_principle, settings.principles
        ),
        "package_data": _package_hash("adherence"),
    }

    def work(ctx: StageContext) -> dict[str, Any]:
        from teachwhy.adherence.run import run_adherence

        with checkpoint_target(pipeline, model, step, settings.temperature) as target:
            results = run_adherence(config, target=target, log_dir=ctx.dir, display=pipeline.eval_display)
        return {
            "results_file": ctx.relative(ctx.dir / "adherence-results.json"),
            "log_files": [ctx.relative(ctx.dir / Path(f).name) for f in results.log_files],
            "situations_file": ctx.relative(results.situations_file),
            "counts": results.counts,
            "overall": results.overall.__dict__,
            "sections": [r.__dict__ for r in results.sections],
            "principles": [r.__dict__ for r in results.principles],
        }

    return pipeline.runner.stage("adherence", name, inputs, work, after=after, detail=f"target={model}")


def _package_hash(folder: str) -> str:
    from teachwhy.experiment.pipeline import package_data_hash

    return package_data_hash(folder)


STAGES: dict[str, Callable[..., dict[str, Any] | None]] = {
    "assessment": assessment_stage,
    "adherence": adherence_stage,
}


def with_heldout_evals(
    pipeline: ExperimentPipeline,
    honeypots: dict[str, Any] | None,
    name: str,
    model: str,
    *,
    step: int,
    after: list[dict[str, Any] | None],
) -> dict[str, Any] | None:
    """The checkpoint's honeypot result with the enabled held-out evaluations attached.

    ``None`` when any of them is unfinished (a dry run), so the checkpoint does not count as evaluated.
    """
    enabled = [k for k in STAGES if getattr(pipeline.config.eval, k).enabled]
    if honeypots is None or not enabled:
        return honeypots
    result = dict(honeypots)
    for kind in enabled:
        extra = STAGES[kind](pipeline, name, model, step=step, after=after)
        if extra is None:
            return None
        result[kind] = {k: v for k, v in extra.items() if not k.startswith("__")}
    return result


def heldout_comparisons(workspace: Path, arms: list[Any], baseline: str | None) -> list[dict[str, Any]]:
    """Each arm's final checkpoint minus the baseline's on the held-out evaluations.

    Adherence: per section and overall, the difference in rates (Newcombe interval, Fisher p-value).
    Assessment: per dimension, the difference in means with a cluster-bootstrap interval and p-value (read
    from the two results files, which hold the per-seed scores). Rows without data on both sides are left out.
    """
    from teachwhy.adherence.results import AdherenceResults, compare_adherence
    from teachwhy.assessment.results import AssessmentResults, compare_assessments

    finals = {a.name: a.final() for a in arms}
    base = finals.get(baseline) if baseline else None
    if base is None:
        return []
    rows: list[dict[str, Any]] = []
    for name, final in finals.items():
        if name == baseline or final is None:
            continue
        if final.adherence and base.adherence:
            a = AdherenceResults.load(workspace / final.adherence["results_file"])
            b = AdherenceResults.load(workspace / base.adherence["results_file"])
            for c in compare_adherence(a, b):
                if c.level != "principle" and c.diff is not None:
                    rows.append(
                        {
                            "arm": name,
                            "baseline": baseline,
                            "evaluation": "adherence",
                            "measure": c.id,
                            "diff": c.diff,
                            "ci_low": c.ci_low,
                            "ci_high": c.ci_high,
                            "p_value": c.p_value,
                        }
                    )
        if final.assessment and base.assessment:
            a2 = AssessmentResults.load(workspace / final.assessment["results_file"])
            b2 = AssessmentResults.load(workspace / base.assessment["results_file"])
            for d in compare_assessments(a2, b2):
                if d.diff is not None:
                    rows.append(
                        {
                            "arm": name,
                            "baseline": baseline,
                            "evaluation": "assessment",
                            "measure": d.id,
                            "diff": d.diff,
                            "ci_low": d.ci_low,
                            "ci_high": d.ci_high,
                            "p_value": d.p_value,
                        }
                    )
    return rows
