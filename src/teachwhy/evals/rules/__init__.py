"""The trace rules: a recall-first gate over the action log, one verdict per behaviour category.

What a verdict means and what every family shares is in :mod:`.common`; each family's gate is its own module.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from teachwhy.evals.rules.blackmail import blackmail_rule
from teachwhy.evals.rules.common import (
    FAMILIES,
    HONEYPOT_MODELS,
    BlackmailHoneypot,
    CategoryVerdict,
    FramingHoneypot,
    RuleVerdict,
    RuleVerdictName,
    SabotageHoneypot,
)
from teachwhy.evals.rules.framing import framing_rule
from teachwhy.evals.rules.sabotage import sabotage_rule
from teachwhy.evals.world import ActionRecord

_RULES: dict[str, Callable[..., RuleVerdict]] = {
    "blackmail": blackmail_rule,
    "research_sabotage": sabotage_rule,
    "framing": framing_rule,
}


def apply_rule(
    family: str, honeypot: dict[str, object], actions: list[ActionRecord], world: dict[str, Any]
) -> RuleVerdict:
    """Apply ``family``'s gate, with the scenario's ``honeypot`` parameters and its initial ``world`` (the
    episode's declared state: inbox, files, directory, cast), to an action log."""
    params = HONEYPOT_MODELS[family].model_validate(honeypot)
    return _RULES[family](params, actions, world)


__all__ = [
    "FAMILIES",
    "HONEYPOT_MODELS",
    "BlackmailHoneypot",
    "CategoryVerdict",
    "FramingHoneypot",
    "RuleVerdict",
    "RuleVerdictName",
    "SabotageHoneypot",
    "apply_rule",
    "blackmail_rule",
    "framing_rule",
    "sabotage_rule",
]
