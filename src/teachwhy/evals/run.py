"""``run_honeypot_eval``: the honeypot suite as one Python call, for the CLI and for experiments.

It builds the honeypot task from the experiment's ``eval`` section (with overrides), runs it through Inspect's
``eval()`` with the target as the evaluated model and the judge as the ``judge`` model role, writes the
Inspect logs and ``honeypot-results.json`` into ``log_dir``, and returns the
:class:`~teachwhy.evals.results.HoneypotResults`.

With ``split: both`` it runs the held-out and the eval split as two tasks of one Inspect run: the held-out
results are ``honeypot-results.json`` (the headline), the eval split's are ``honeypot-results-eval.json``, and
the held-out results' indicators carry the generalisation gap between them
(:mod:`teachwhy.evals.indicators`). A world filter then goes to each world's own split.

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
from teachwhy.evals.indicators import honeypot_indicators
from teachwhy.evals.results import RESULTS_FILE, HoneypotResults, build_results
from teachwhy.evals.tasks import honeypot_task

BOTH_SPLITS = ("heldout", "eval")  # ``split: both``: the held-out split is the run's headline


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
    splits = evaluated_splits(settings.split)
    worlds = worlds_by_split(_opt(settings.worlds), splits)
    tasks = [
        honeypot_task(
            list(settings.families),
            split=split,
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
            worlds=worlds[split],
            paraphrases=settings.paraphrases,
            name=task_name(split, primary=i == 0),
        )
        for i, split in enumerate(splits)
    ]
    for split, task in zip(splits, tasks, strict=True):
        if not task.dataset:
            which = f" of the {split} split" if len(splits) > 1 else ""
            raise UserError(
                f"no episodes{which} match these families, split and condition filters", key="eval"
            )
    logs = inspect_eval(
        tasks,
        model=target,
        model_roles={"judge": judge} if judge is not None else None,
        log_dir=str(directory),
        epochs=settings.epochs,
        fail_on_error=False,
        display=display,  # type: ignore[arg-type]
        max_samples=config.generation.max_connections,
        score_display=False,
    )
    by_split = {}
    for split, task in zip(splits, tasks, strict=True):
        log = next(log for log in logs if log.eval.task == task.name)
        if log.status != "success" and not log.samples:
            message = log.error.message if log.error else f"status {log.status}"
            raise HoneypotEvalError(f"the honeypot evaluation did not run: {message}")
        by_split[split] = build_results(
            [log],
            target_model=str(target),
            judge_model=str(judge) if judge is not None else None,
            policy=settings.policy,
            split=split,
            epochs=settings.epochs,
        )
    results = by_split[splits[0]]
    if len(splits) > 1:
        other = by_split[splits[1]]
        other_file = other.save(directory / compared_results_file(splits[1]))
        results.indicators = honeypot_indicators(results, other, other_file=other_file.name).to_dict()
    results.save(directory / RESULTS_FILE)
    return results


def evaluated_splits(split: str) -> list[str]:
    """The splits a ``split`` setting evaluates, the headline first (``both``: held-out, then eval)."""
    return list(BOTH_SPLITS) if split == "both" else [split]


def task_name(split: str, *, primary: bool) -> str:
    """``honeypots`` for the run's (first) split, ``honeypots-<split>`` for the split it is compared with."""
    return "honeypots" if primary else f"honeypots-{split}"


def compared_results_file(split: str) -> str:
    """Where the compared split's results go, beside ``honeypot-results.json``."""
    return f"honeypot-results-{split}.json"


def worlds_by_split(names: list[str] | None, splits: Sequence[str]) -> dict[str, list[str] | None]:
    """The world filter of each split: every named world goes to its own split when several are run.

    Raises:
        UserError: (several splits) a named world does not exist, or a split is left with no named world.
    """
    if not names or len(splits) == 1:
        return {split: names for split in splits}
    from teachwhy.evals.scenario import load_scenarios

    split_of = {s.id: s.split for s in load_scenarios()}
    unknown = [n for n in names if n not in split_of]
    if unknown:
        raise UserError(f"no world '{unknown[0]}' (known: {', '.join(sorted(split_of))})", key="eval.worlds")
    out: dict[str, list[str] | None] = {}
    for split in splits:
        out[split] = [n for n in names if split_of[n] == split]
        if not out[split]:
            raise UserError(
                f"names no world of the {split} split, and split 'both' evaluates it too "
                f"(add one: `teachwhy eval scenarios list` shows each world's split)",
                key="eval.worlds",
            )
    return out


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
