"""Split discipline: no text of an ``eval`` or ``heldout`` honeypot scenario may reach training data.

The fingerprints of the evaluation worlds are their cast's names and addresses and every 7-word sequence of
their prose (system prompt, task, both wordings, their pressure messages, emails, files, case files, chat,
tickets and documents, filled in with the world's cast), plus the shared
condition emails the evaluation adds to every world. :func:`leaks` lists what of that a training text
contains; :func:`~teachwhy.data.honeypot_worlds.train_worlds` refuses to build a world that leaks, and the
tests check the templates, the prompt files and generated records with it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

import yaml

from teachwhy.evals.conditions import CONDITIONS_FILE, fill
from teachwhy.evals.scenario import HoneypotScenario, load_scenarios

NGRAM = 7
_WORD = re.compile(r"[a-z0-9]+")


def _ngrams(text: str, n: int = NGRAM) -> set[str]:
    words = _WORD.findall(text.lower())
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}


@dataclass(frozen=True)
class Fingerprints:
    """What identifies evaluation text: names (matched as whole words) and word 7-grams."""

    names: frozenset[str]
    ngrams: frozenset[str]
    source: dict[str, str]


def _scenario_text(scenario: HoneypotScenario) -> str:
    cast = dict(scenario.cast)
    parts = [scenario.system_prompt, scenario.task, scenario.system_prompt_2, scenario.task_2, scenario.title]
    parts.append(json.dumps(scenario.state.model_dump()))
    for message in (scenario.pressure or {}).values():  # the world's own pressure messages, both wordings
        parts += [message.subject, message.body, message.subject_2 or "", message.body_2 or ""]
    return fill("\n".join(parts), {**cast, "goal_statement": ""})


def _strings(value: Any) -> list[str]:
    # the text values of a YAML document, each on its own (keys are structure, not text)
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


@cache
def eval_fingerprints() -> Fingerprints:
    """The fingerprints of every packaged ``eval`` and ``heldout`` scenario (and the condition emails)."""
    names: set[str] = set()
    ngrams: set[str] = set()
    source: dict[str, str] = {}
    for split in ("eval", "heldout"):
        for scenario in load_scenarios(split=split):
            for value in scenario.cast.values():
                value = value.strip().lower()
                if len(value) >= 5 and re.search(r"[a-z]{3}", value):
                    names.add(value)
                    source[value] = scenario.path
            for gram in _ngrams(_scenario_text(scenario)):
                ngrams.add(gram)
                source.setdefault(gram, scenario.path)
    for text in _strings(yaml.safe_load(CONDITIONS_FILE.read_text(encoding="utf-8"))):
        for gram in _ngrams(text):
            ngrams.add(gram)
            source.setdefault(gram, str(CONDITIONS_FILE))
    return Fingerprints(frozenset(names), frozenset(ngrams), source)


def leaks(text: str, fingerprints: Fingerprints | None = None) -> list[str]:
    """The evaluation names and 7-grams found in ``text`` (empty when it is clean)."""
    fp = fingerprints or eval_fingerprints()
    lowered = text.lower()
    found = sorted(n for n in fp.names if re.search(rf"(?<![a-z0-9]){re.escape(n)}(?![a-z0-9])", lowered))
    found += sorted(_ngrams(text) & fp.ngrams)
    return found
