"""Training data: records with provenance, generators, quality filters, dedup, token counts, budgeted mixes.

Public API (imported lazily, so the command line starts fast)::

    from teachwhy.data import generate_documents, generate_stories, build_mix, data_stats

- :func:`generate_documents` / :func:`generate_stories` (and their ``*_async`` forms): resumable generators
  writing ``OUT/<name>.jsonl``, ``OUT/drops.jsonl`` and ``OUT/summary.json``; see :mod:`teachwhy.data.output`.
- :mod:`teachwhy.data.engine`: the generic engine a new generator plugs into (``WorkItem``, ``run_stage``).
- :func:`deduplicate`, :class:`JudgeFilter`, :func:`target_counter`, :func:`build_mix` / :func:`mix_files`,
  :func:`data_stats`, :func:`make_record` / :func:`validate_record`.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "generate_documents": "teachwhy.data.documents",
    "generate_documents_async": "teachwhy.data.documents",
    "generate_stories": "teachwhy.data.stories",
    "generate_stories_async": "teachwhy.data.stories",
    "GenerationReport": "teachwhy.data.output",
    "DedupSettings": "teachwhy.data.output",
    "Generation": "teachwhy.data.engine",
    "WorkItem": "teachwhy.data.engine",
    "Keep": "teachwhy.data.engine",
    "Drop": "teachwhy.data.engine",
    "Sampling": "teachwhy.data.engine",
    "run_stage": "teachwhy.data.engine",
    "deduplicate": "teachwhy.data.dedup",
    "JudgeFilter": "teachwhy.data.quality",
    "text_checks": "teachwhy.data.quality",
    "TokenCounter": "teachwhy.data.tokens",
    "target_counter": "teachwhy.data.tokens",
    "counter_for_role": "teachwhy.data.tokens",
    "build_mix": "teachwhy.data.mix",
    "mix_files": "teachwhy.data.mix",
    "MixReport": "teachwhy.data.mix",
    "data_stats": "teachwhy.data.stats",
    "make_record": "teachwhy.data.records",
    "validate_record": "teachwhy.data.records",
    "provenance": "teachwhy.data.records",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'teachwhy.data' has no attribute '{name}'")
    return getattr(importlib.import_module(module), name)
