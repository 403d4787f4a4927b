"""``run_adherence``: freeze (once) and run the constitution-adherence evaluation as one Python call.

The held-out situations live in ``<workspace>/evals/adherence/``: the first run generates them with the
``generator`` role and freezes them; every later run (and every checkpoint of an experiment) reads the same
file. The target answers each situation, the judge grades the answer, and ``adherence-results.json`` is
written beside the Inspect logs.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from inspect_ai import eval as inspect_eval
from inspect_ai.model import Model
from pydantic import ValidationError

from teachwhy.adherence.results import RESULTS_FILE, AdherenceResults, build_adherence_results
from teachwhy.adherence.situations import Situation, freeze_situations
from teachwhy.adherence.task import adherence_task, select_principles
from teachwhy.config import AdherenceConfig, ExperimentConfig
from teachwhy.constitution import Constitution, load_constitution
from teachwhy.storage import file_hash


class AdherenceRunError(RuntimeError):
    """Inspect could not run the adherence evaluation at all."""


def situations_folder(config: ExperimentConfig) -> Path:
    """Where the frozen situations of this workspace live."""
    return config.workspace_path / "evals" / "adherence"


def default_log_dir(config: ExperimentConfig) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    return config.workspace_path / "evals" / f"adherence-{stamp}"


def adherence_settings(config: ExperimentConfig, overrides: dict[str, Any]) -> AdherenceConfig:
    """The config's ``eval.adherence`` with overrides (validated like the file)."""
    from teachwhy.config import validation_error

    given = {k: v for k, v in overrides.items() if v is not None}
    unknown = sorted(set(given) - set(AdherenceConfig.model_fields))
    if unknown:
        raise TypeError(f"unknown adherence setting(s): {', '.join(unknown)}")
    try:
        return AdherenceConfig.model_validate({**config.eval.adherence.model_dump(), **given})
    except ValidationError as e:
        raise validation_error(e, config.source) from None


def frozen_situations(
    config: ExperimentConfig,
    settings: AdherenceConfig,
    *,
    constitution: Constitution | None = None,
    generator: Model | None = None,
) -> tuple[Path, list[Situation], bool]:
    """The workspace's frozen situations for the constitution, generated with the generator role if absent."""
    from teachwhy.models import role_model

    constitution = constitution or load_constitution(config.constitution_path)

    def make_generator() -> Model:
        return generator or role_model(config, "generator", temperature=0.9)

    return freeze_situations(
        constitution,
        situations_folder(config),
        make_generator,
        per_principle=settings.situations_per_principle,
        principles=settings.principles,
        max_tokens=settings.situation_max_tokens,
        seed=config.generation.seed,
        max_connections=config.generation.max_connections,
    )


def run_adherence(
    config: ExperimentConfig,
    *,
    target: Model | None = None,
    judge: Model | None = None,
    generator: Model | None = None,
    log_dir: str | Path | None = None,
    display: str = "none",
    **overrides: Any,
) -> AdherenceResults:
    """Run the adherence evaluation (freezing the situations first if this workspace has none).

    Args:
        config: the experiment; ``eval.adherence`` and the model roles are the defaults.
        target: the model to evaluate (default: the ``target`` role).
        judge: the grader (default: the ``judge`` role).
        generator: writes the situations if none are frozen yet (default: the ``generator`` role).
        log_dir: where the logs and ``adherence-results.json`` go.
        display: Inspect's display.
        **overrides: any :class:`~teachwhy.config.AdherenceConfig` field.

    Raises:
        UserError: a setting or a model role is invalid, or the frozen set is damaged.
        SituationsIncomplete: the situations could not all be generated (nothing frozen).
        AdherenceRunError: Inspect could not run the evaluation at all.
    """
    from teachwhy.models import role_model

    settings = adherence_settings(config, overrides)
    constitution = load_constitution(config.constitution_path)
    path, situations, _ = frozen_situations(config, settings, constitution=constitution, generator=generator)
    chosen = select_principles(
        situations, settings.principles, source=config.source, key="eval.adherence.principles"
    )
    target = target or role_model(config, "target", temperature=settings.temperature)
    judge = judge or role_model(config, "judge", temperature=0.0)
    directory = Path(log_dir) if log_dir is not None else default_log_dir(config)
    task = adherence_task(
        chosen,
        temperature=settings.temperature,
        max_tokens=settings.max_tokens,
        judge_max_tokens=settings.judge_max_tokens,
        name="adherence",
    )
    logs = inspect_eval(
        task,
        model=target,
        model_roles={"judge": judge},
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
        raise AdherenceRunError(f"the adherence evaluation did not run: {message}")
    titles = {p.id: (p.section, p.title) for p in constitution.principles}
    results = build_adherence_results(
        logs,
        titles=titles,
        target_model=str(target),
        judge_model=str(judge),
        epochs=settings.epochs,
        situations_file=str(path),
        situations_sha256=file_hash(path),
    )
    results.save(directory / RESULTS_FILE)
    return results
