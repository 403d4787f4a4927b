"""RL after SFT: GRPO on harmlessness environments with a constitution-grounded judge reward.

The public names are imported on first use, so that importing the CLI does not load torch and TRL.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from teachwhy.rl.environments import RlPrompt as RlPrompt
    from teachwhy.rl.environments import augment_prompts as augment_prompts
    from teachwhy.rl.environments import load_builtin_prompts as load_builtin_prompts
    from teachwhy.rl.environments import load_prompt_file as load_prompt_file
    from teachwhy.rl.reward import ConstitutionReward as ConstitutionReward
    from teachwhy.rl.reward import Judgement as Judgement
    from teachwhy.rl.run import RlResult as RlResult
    from teachwhy.rl.run import train_rl as train_rl

_EXPORTS = {
    "RlPrompt": "teachwhy.rl.environments",
    "augment_prompts": "teachwhy.rl.environments",
    "load_builtin_prompts": "teachwhy.rl.environments",
    "load_prompt_file": "teachwhy.rl.environments",
    "ConstitutionReward": "teachwhy.rl.reward",
    "Judgement": "teachwhy.rl.reward",
    "RlResult": "teachwhy.rl.run",
    "train_rl": "teachwhy.rl.run",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'teachwhy.rl' has no attribute {name!r}")
