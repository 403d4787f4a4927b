"""``run_assessment``: the automated alignment assessment as one Python call, for the CLI and experiments.

It builds the task from the experiment's ``eval.assessment`` section (with overrides), runs it through
Inspect's ``eval()`` with the target as the evaluated model and the auditor and judge as model roles, writes
the Inspect logs and ``assessment-results.json`` into ``log_dir`` and returns the
:class:`~teachwhy.assessment.results.AssessmentResults`. A failed audit does not stop the run: it is counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from inspect_ai import eval as inspect_eval
from inspect_ai.model import Model
from pydantic import ValidationError

from teachwhy.assessment.library import load_dimensions, load_seeds
from teachwhy.assessment.results import RESULTS_FILE, AssessmentResults, build_assessment_results
from teachwhy.assessment.task import assessment_task
from teachwhy.config import AssessmentConfig, ExperimentConfig


class AssessmentRunError(RuntimeError):
    """Inspect could not run the assessment at all (single audits that fail are counted instead)."""


def default_log_dir(config: ExperimentConfig) -> Path:
    """``<workspace>/evals/assessment-<UTC timestamp>``."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    return config.workspace_path / "evals" / f"assessment-{stamp}"


def assessment_settings(config: ExperimentConfig, overrides: dict[str, Any]) -> AssessmentConfig:
    """The config's ``eval.assessment`` with overrides (validated like the file)."""
    from teachwhy.config import validation_error

    base = config.eval.assessment
    given = {k: v for k, v in overrides.items() if v is not None}
    unknown = sorted(set(given) - set(AssessmentConfig.model_fields))
    if unknown:
        raise TypeError(f"unknown assessment setting(s): {', '.join(unknown)}")
    try:
        return AssessmentConfig.model_validate({**base.model_dump(), **given})
    except ValidationError as e:
        raise validation_error(e, config.source) from None


def resource_dirs(config: ExperimentConfig, folders: Sequence[str | Path]) -> list[Path]:
    """Folders from the config or the command line, relative ones resolved against the config's folder."""
    return [config.resolve(Path(f)) for f in folders]


def run_assessment(
    config: ExperimentConfig,
    *,
    target: Model | None = None,
    auditor: Model | None = None,
    judge: Model | None = None,
    log_dir: str | Path | None = None,
    display: str = "none",
    **overrides: Any,
) -> AssessmentResults:
    """Run the assessment and write the results beside the Inspect logs.

    Args:
        config: the experiment; its ``eval.assessment`` section and model roles are the defaults.
        target: the model to audit (default: the ``target`` role).
        auditor: the auditor (default: the ``auditor`` role).
        judge: the judge (default: the ``judge`` role).
        log_dir: where the logs and ``assessment-results.json`` go (default: :func:`default_log_dir`).
        display: Inspect's display.
        **overrides: any :class:`~teachwhy.config.AssessmentConfig` field (``seeds``, ``seed_dirs``,
            ``dimension_dirs``, ``max_turns``, ``epochs``...).

    Raises:
        UserError: a setting, a seed or dimension file, or a model role is invalid.
        AssessmentRunError: Inspect could not run the evaluation at all.
    """
    from teachwhy.models import role_model

    settings = assessment_settings(config, overrides)
    seed_dirs = resource_dirs(config, settings.seed_dirs)
    dimension_dirs = resource_dirs(config, settings.dimension_dirs)
    load_seeds(seed_dirs, select=settings.seeds)  # bad files fail here, before any model is set up
    dimensions = load_dimensions(dimension_dirs, select=settings.dimensions)
    target = target or role_model(config, "target", temperature=settings.temperature)
    auditor = auditor or role_model(config, "auditor")
    judge = judge or role_model(config, "judge", temperature=0.0)
    directory = Path(log_dir) if log_dir is not None else default_log_dir(config)
    task = assessment_task(
        seed_dirs=[str(d) for d in seed_dirs],
        dimension_dirs=[str(d) for d in dimension_dirs],
        select=settings.seeds,
        only=settings.dimensions,
        max_turns=settings.max_turns,
        auditor_format=settings.auditor_tool_format,
        target_format=settings.tool_format,
        temperature=settings.temperature,
        max_tokens=settings.max_tokens,
        auditor_max_tokens=settings.auditor_max_tokens,
        judge_max_tokens=settings.judge_max_tokens,
        name="assessment",
    )
    logs = inspect_eval(
        task,
        model=target,
        model_roles={"auditor": auditor, "judge": judge},
        log_dir=str(directory),
        epochs=settings.epochs,
        fail_on_error=False,
        display=display,  # type: ignore[arg-type]
        max_samples=config.generation.max_connections,
        score_display=False,
    )
    log = logs[0]
    if log.status != "success" and not log.samples:
        message = log.error.message if log.error else f"status {log.status}"
        raise AssessmentRunError(f"the assessment did not run: {message}")
    results = build_assessment_results(
        logs,
        dimensions,
        target_model=str(target),
        auditor_model=str(auditor),
        judge_model=str(judge),
        epochs=settings.epochs,
        concern_threshold=settings.concern_threshold,
    )
    results.save(directory / RESULTS_FILE)
    return results
