"""`teachwhy data stats DIR`: what a folder of datasets holds.

Counts and tokens by kind, principle coverage (with the principles no record teaches, when the constitution
is known), drop reasons from every ``drops.jsonl`` and failed model calls from every ``summary.json``.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from teachwhy.constitution import Constitution
from teachwhy.data.engine import WORK_DIR
from teachwhy.data.output import DROPS, SUMMARY
from teachwhy.errors import UserError
from teachwhy.storage import iter_jsonl


@dataclass
class KindStats:
    records: int = 0
    tokens: int = 0
    uncounted: int = 0


@dataclass
class DataStats:
    """Everything `data stats` prints."""

    files: list[str] = field(default_factory=list)
    kinds: dict[str, KindStats] = field(default_factory=dict)
    coverage: dict[str, int] = field(default_factory=dict)
    uncovered: list[str] = field(default_factory=list)
    drops: Counter[str] = field(default_factory=Counter)
    model_errors: Counter[str] = field(default_factory=Counter)
    tokenizers: Counter[str] = field(default_factory=Counter)

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "kinds": {k: vars(v) for k, v in sorted(self.kinds.items())},
            "coverage": self.coverage,
            "uncovered": self.uncovered,
            "drops": dict(sorted(self.drops.items())),
            "model_errors": dict(sorted(self.model_errors.items())),
            "tokenizers": dict(self.tokenizers),
        }


def dataset_files(directory: Path) -> list[Path]:
    """The dataset JSONL files under ``directory`` (not drops, not generators' work files), sorted."""
    files = []
    for path in sorted(directory.rglob("*.jsonl")):
        if WORK_DIR in path.relative_to(directory).parts or path.name == DROPS:
            continue
        files.append(path)
    return files


def data_stats(directory: str | Path, *, constitution: Constitution | None = None) -> DataStats:
    """Scan ``directory`` (recursively) for dataset files, drops and generation summaries.

    Raises:
        UserError: the folder does not exist.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise UserError("not a folder", file=directory)
    stats = DataStats()
    coverage: Counter[str] = Counter()
    for path in dataset_files(directory):
        stats.files.append(str(path.relative_to(directory)))
        for record in iter_jsonl(path):
            kind = str(record.get("kind", "unknown"))
            entry = stats.kinds.setdefault(kind, KindStats())
            entry.records += 1
            tokens = record.get("tokens")
            if isinstance(tokens, dict) and isinstance(tokens.get("count"), int):
                entry.tokens += tokens["count"]
                stats.tokenizers[str(tokens.get("tokenizer"))] += 1
            else:
                entry.uncounted += 1
            for pid in (record.get("provenance") or {}).get("principle_ids") or []:
                coverage[pid] += 1
    for path in sorted(directory.rglob(DROPS)):
        for drop in iter_jsonl(path):
            stats.drops[str(drop.get("reason"))] += 1
    for path in sorted(directory.rglob(SUMMARY)):
        try:
            summary = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            raise UserError("not valid JSON", file=path) from None
        for reason, n in (summary.get("model_errors") or {}).items():
            stats.model_errors[reason] += int(n)
    if constitution is not None:
        stats.coverage = {p.id: coverage.get(p.id, 0) for p in constitution.principles}
        stats.uncovered = [p.id for p in constitution.principles if not coverage.get(p.id)]
        unknown = sorted(set(coverage) - {p.id for p in constitution.principles})
        for pid in unknown:  # records teaching principles this constitution does not have (another version?)
            stats.coverage[pid] = coverage[pid]
    else:
        stats.coverage = dict(sorted(coverage.items()))
    return stats
