"""``run_honeypot_eval``: the honeypot suite as one Python call, for the CLI and for experiments.

It builds the honeypot task from the experiment's ``eval`` section (with overrides), runs it through Inspect's
``eval()`` with the target as the evaluated model and the judge as the ``judge`` model role, writes the
Inspect logs and ``honeypot-results.json`` into ``log_dir``, and returns the
:class:`~teachwhy.evals.results.HoneypotResults`.

Failed target calls do not stop the run (``fail_on_error=False``): they become error samples, counted as such.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from inspect_ai import eval as inspect_eval
from inspect_ai.model import Model

from teachwhy.config import EvalConfig, ExperimentConfig
from teachwhy.errors import UserError
from teachwhy.evals.results import RESULTS_FILE, HoneypotResults, build_results
from teachwhy.evals.tasks import honeypot_task


class HoneypotEvalError(RuntimeError):
    """The Inspect evaluation as a whole failed (not one sample: those are counted as errors)."""


def default_log_dir(config: ExperimentConfig) -> Path:
    """``<workspace>/evals/honeypots-<UTC timestamp>``."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    return config.workspace_path / "evals" / f"honeypots-{stamp}"


def run_honeypot_eval(
    config: ExperimentConfig,
    *,
    target: Model | None = None,
    judge: Model | None = None,
    log_dir: str | Path | None = None,
    display: str = "none",
    **overrides: Any,
) -> HoneypotResults:
    """Run the honeypot evaluations and write the results beside the Inspect logs.

    Args:
        config: the experiment; its ``eval`` section and model roles are the defaults.
        target: the model to evaluate (default: the ``target`` role, e.g. a checkpoint served by any
        provider). judge: the judge model (default: the ``judge`` role). Not used when the policy is ``rule``.
        log_dir: where the Inspect logs and ``honeypot-results.json`` go (default: :func:`default_log_dir`).
        display: Inspect's display (``none``, ``plain``, ``rich``...).
        **overrides: any :class:`~teachwhy.config.EvalConfig` field (``families``, ``split``, ``limit``,
            ``epochs``, ``max_turns``, ``policy``, ``goal_types``...), validated like the config file.

    Raises:
        UserError: an override is invalid or a model role cannot be set up.
        HoneypotEvalError: Inspect could not run the evaluation at all.
    """
    from teachwhy.models import role_model

    settings = _settings(config.eval, overrides)
    if target is None:
        target = role_model(config, "target", temperature=settings.temperature)
    if judge is None and settings.policy != "rule":
        judge = role_model(config, "judge", temperature=0.0)
    directory = Path(log_dir) if log_dir is not None else default_log_dir(config)
    task = honeypot_task(
        list(settings.families),
        split=settings.split,
        limit=settings.limit,
        max_turns=settings.max_turns,
        tool_format=settings.tool_format,
        goal_types=_opt(settings.goal_types),
        goal_values=settings.goal_values,
        urgencies=_opt(settings.urgencies),
        policy=settings.policy,
        temperature=settings.temperature,
        max_tokens=settings.max_tokens,
        judge_max_tokens=settings.judge_max_tokens,
        seed=settings.seed,
        worlds=_opt(settings.worlds),
        paraphrases=settings.paraphrases,
        name="honeypots",
    )
    if not task.dataset:
        raise UserError("no episodes match these families, split and condition filters", key="eval")
    logs = inspect_eval(
        task,
        model=target,
        model_roles={"judge": judge} if judge is not None else None,
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
        raise HoneypotEvalError(f"the honeypot evaluation did not run: {message}")
    results = build_results(
        logs,
        target_model=str(target),
        judge_model=str(judge) if judge is not None else None,
        policy=settings.policy,
        split=settings.split,
        epochs=settings.epochs,
    )
    results.save(directory / RESULTS_FILE)
    return results


def _opt(values: Sequence[str] | None) -> list[str] | None:
    return list(values) if values else None


def _settings(base: EvalConfig, overrides: dict[str, Any]) -> EvalConfig:
    from pydantic import ValidationError

    from teachwhy.config import validation_error

    given = {k: v for k, v in overrides.items() if v is not None}
    unknown = sorted(set(given) - set(EvalConfig.model_fields))
    if unknown:
        raise TypeError(f"unknown eval setting(s): {', '.join(unknown)}")
    try:
        return EvalConfig.model_validate({**base.model_dump(), **given})
    except ValidationError as e:
        raise validation_error(e, None) from None
