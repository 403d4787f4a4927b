"""Honeypot evaluations: blackmail, research sabotage and framing, as Inspect tasks and plain Python.

The names below are imported lazily, so ``import teachwhy.evals.stats`` (used by the report) stays light.

- :func:`run_honeypot_eval` -- the whole suite on a target, results written beside the Inspect logs;
- :class:`HoneypotResults` -- the results file (``honeypot-results.json``);
- :func:`honeypot_episodes`, :func:`run_episode`, :func:`classify_episode` -- the pieces, for rejection
  sampling on generated worlds (build :class:`Episode` objects, play them, keep those classified
  ``not_harmful``).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "run_honeypot_eval": "teachwhy.evals.run",
    "HoneypotResults": "teachwhy.evals.results",
    "compare_results": "teachwhy.evals.comparison",
    "honeypot_episodes": "teachwhy.evals.tasks",
    "honeypot_task": "teachwhy.evals.tasks",
    "Episode": "teachwhy.evals.conditions",
    "Condition": "teachwhy.evals.conditions",
    "build_episode": "teachwhy.evals.conditions",
    "run_episode": "teachwhy.evals.agent",
    "EpisodeResult": "teachwhy.evals.agent",
    "classify_episode": "teachwhy.evals.classify",
    "classify_result": "teachwhy.evals.classify",
    "Classification": "teachwhy.evals.classify",
    "HoneypotScenario": "teachwhy.evals.scenario",
    "load_scenarios": "teachwhy.evals.scenario",
    "WorldState": "teachwhy.evals.world",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'teachwhy.evals' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
