"""A generator's output folder, finished: deduplicated records with token counts, all drops, a summary.

Layout of ``OUT/`` after a run::

    OUT/<generator>.jsonl   kept records, in plan order, with token counts (what training reads)
    OUT/drops.jsonl         every dropped item with its stage, reason and detail
    OUT/summary.json        counts, drop reasons, failed model calls, tokens, principle coverage
    OUT/.work/              append-only per-stage files that make the run resumable

Finishing is deterministic: the same kept items give byte-identical files, so re-running a completed
generation rewrites the same output.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from teachwhy.constitution import Constitution
from teachwhy.data.dedup import deduplicate
from teachwhy.data.engine import Generation, read_drops
from teachwhy.data.records import drop_record, principle_ids_of, record_content, verdict
from teachwhy.data.tokens import TokenCounter
from teachwhy.storage import atomic_write_json, write_jsonl

SUMMARY = "summary.json"
DROPS = "drops.jsonl"


@dataclass(frozen=True)
class DedupSettings:
    """Which dedup passes run and their thresholds (``None`` skips a pass)."""

    ngram_threshold: float | None = 0.7
    embedding_threshold: float | None = None
    embed: Callable[[Sequence[str]], NDArray[np.float32]] | None = None


@dataclass
class GenerationReport:
    """What a generator run produced; also written as ``summary.json``."""

    generator: str
    kind: str
    out_file: str
    requested: int
    kept: int
    unfinished: int
    drops: dict[str, int]
    model_errors: dict[str, int]
    tokens: int
    tokenizer: str | None
    tokens_exact: bool | None
    coverage: dict[str, int]
    uncovered: list[str]
    stages: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """Every planned item finished (kept or dropped); no failed model call is waiting for a retry."""
        return self.unfinished == 0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "complete": self.complete}


def finish(
    gen: Generation,
    records: list[dict[str, Any]],
    *,
    requested: int,
    unfinished: int,
    constitution: Constitution,
    counter: TokenCounter | None,
    dedup: DedupSettings | None,
    stages: dict[str, dict[str, int]] | None = None,
    planned_ids: set[str] | None = None,
) -> GenerationReport:
    """Deduplicate, count tokens, and write the output folder.

    Args:
        gen: the run's settings (output folder, generator name).
        records: the final stage's kept records, in plan order.
        requested: how many items were asked for.
        unfinished: planned items with no outcome yet (failed model calls), to be retried by the next run.
        constitution: for principle coverage.
        counter: the target tokenizer; ``None`` leaves records without token counts.
        dedup: the dedup passes, or ``None`` for none.
        stages: per-stage counts to include in the summary.
        planned_ids: ids of every item of the current plan; drops left by an earlier, different plan (another
            count or seed in the same folder) are then not reported.
    """
    stage_drops = [d for d in read_drops(gen.out_dir) if planned_ids is None or d["id"] in planned_ids]
    kept = records
    dedup_drops: list[dict[str, Any]] = []
    if dedup is not None and records:
        result = deduplicate(
            [record_content(r) for r in records],
            ngram_threshold=dedup.ngram_threshold,
            embedding_threshold=dedup.embedding_threshold,
            embed=dedup.embed,
        )
        for d in result.duplicates:
            record = records[d.index]
            prov = {
                **record["provenance"],
                "filters": {
                    **record["provenance"]["filters"],
                    "dedup": verdict(False, score=d.similarity, reason=d.reason),
                },
            }
            dedup_drops.append(
                drop_record(
                    item_id=record["id"],
                    kind=record["kind"],
                    stage="dedup",
                    reason=d.reason,
                    detail=f"duplicate of {records[d.of]['id']} (similarity {d.similarity:g})",
                    output=record_content(record),
                    provenance=prov,
                )
            )
        kept = [records[i] for i in result.kept]
    passes = "exact" if dedup is None else "exact+ngram" + ("+embedding" if dedup.embed else "")
    finished: list[dict[str, Any]] = []
    for record in kept:
        record = {**record, "provenance": {**record["provenance"]}}
        filters = dict(record["provenance"]["filters"])
        filters["dedup"] = (
            verdict(True, reason=passes) if dedup is not None else verdict(None, reason="disabled")
        )
        record["provenance"]["filters"] = filters
        if counter is not None:
            counter.stamp(record)
        finished.append(record)

    out_file = gen.out_dir / f"{gen.generator}.jsonl"
    write_jsonl(out_file, finished)
    all_drops = stage_drops + dedup_drops
    write_jsonl(gen.out_dir / DROPS, all_drops)
    coverage = principle_ids_of(finished)
    report = GenerationReport(
        generator=gen.generator,
        kind=gen.kind,
        out_file=str(out_file),
        requested=requested,
        kept=len(finished),
        unfinished=unfinished,
        drops=dict(sorted(Counter(d["reason"] for d in all_drops).items())),
        model_errors=dict(sorted(gen.model_errors.items())),
        tokens=sum(int(r["tokens"]["count"]) for r in finished if "tokens" in r),
        tokenizer=counter.name if counter else None,
        tokens_exact=counter.exact if counter else None,
        coverage={p.id: coverage.get(p.id, 0) for p in constitution.principles},
        uncovered=[p.id for p in constitution.principles if not coverage.get(p.id)],
        stages=stages or {},
    )
    atomic_write_json(gen.out_dir / SUMMARY, report.to_dict())
    return report


def stage_counts(planned: int, kept: int, dropped: int, failed: int) -> dict[str, int]:
    """Per-stage numbers for the summary: ``kept`` is cumulative, ``dropped`` and ``failed`` this run's."""
    return {"planned": planned, "kept": kept, "dropped_this_run": dropped, "failed_this_run": failed}


def output_path(out_dir: Path, generator: str) -> Path:
    return out_dir / f"{generator}.jsonl"
