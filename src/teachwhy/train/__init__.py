"""Fine-tuning the target model with TRL + PEFT: document midtraining, chat SFT, packing, merged checkpoints.

The public names are imported on first use, so that importing the CLI does not load torch and TRL.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from teachwhy.train.checkpoints import Checkpoint as Checkpoint
    from teachwhy.train.checkpoints import list_checkpoints as list_checkpoints
    from teachwhy.train.records import TrainRecord as TrainRecord
    from teachwhy.train.records import load_records as load_records
    from teachwhy.train.run import TrainResult as TrainResult
    from teachwhy.train.run import resolve_target_path as resolve_target_path
    from teachwhy.train.run import train_model as train_model

_EXPORTS = {
    "Checkpoint": "teachwhy.train.checkpoints",
    "list_checkpoints": "teachwhy.train.checkpoints",
    "TrainRecord": "teachwhy.train.records",
    "load_records": "teachwhy.train.records",
    "TrainResult": "teachwhy.train.run",
    "resolve_target_path": "teachwhy.train.run",
    "train_model": "teachwhy.train.run",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'teachwhy.train' has no attribute {name!r}")
