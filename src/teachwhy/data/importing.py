"""`teachwhy data import`: a dataset you already have, as teachwhy records every later step accepts.

Rows are read and recognised by :mod:`teachwhy.data.import_rows` (JSONL, Parquet or a ``save_to_disk``
folder; ``messages``, ShareGPT ``conversations``, ``prompt``/``response`` or ``text`` columns). A row becomes
a record (kind ``imported`` unless told otherwise) whose provenance has the usual keys (``generator:
imported``, no model, prompt or principle ids) plus ``imported``: the source path as given, its sha256, the
row's 0-based index (for JSONL, its line) and the detected format. A row that cannot be read is dropped with
its reason into ``drops.jsonl``; ``summary.json`` counts rows, kept records, drops and formats like every
generator's summary (plus the source), so ``data stats`` reads it.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from teachwhy.config import ExperimentConfig, ImportedSource
from teachwhy.constitution import Constitution
from teachwhy.data.dedup import deduplicate
from teachwhy.data.import_rows import (
    FORMATS,
    ImportSource,
    RowProblem,
    convert_row,
    open_source,
    read_rows,
    source_sha256,
)
from teachwhy.data.output import DROPS, SUMMARY, DedupSettings, GenerationReport, output_path
from teachwhy.data.records import drop_record, make_record, record_content, sampling_dict, verdict
from teachwhy.data.tokens import TokenCounter
from teachwhy.errors import UserError
from teachwhy.storage import atomic_write_json, content_hash, write_jsonl

GENERATOR = "imported"
Progress = Callable[[str, int, int], None]


def _provenance(source: ImportSource, row: int, format: str | None) -> dict[str, Any]:
    return {
        "generator": GENERATOR,
        "stage": "import",
        "index": row,
        "constitution_sha256": None,
        "principle_ids": [],
        "generator_model": None,
        "prompt_file": None,
        "prompt_sha256": None,
        "sampling": sampling_dict(temperature=None, top_p=None, max_tokens=None),
        "seed": None,
        "parent_ids": [],
        "filters": {},
        "imported": {"file": source.label, "sha256": source.sha256, "row": row, "format": format},
    }


def _raw(row: Any) -> str:
    if isinstance(row, RowProblem):
        return ""
    return json.dumps(row, ensure_ascii=False, default=str)


# --- the whole source ----------------------------------------------------------------------------------


def import_dataset(
    source: ImportSource,
    out_dir: Path,
    *,
    kind: str = GENERATOR,
    format: str = "auto",
    limit: int | None = None,
    counter: TokenCounter | None = None,
    dedup: DedupSettings | None = None,
    progress: Progress | None = None,
) -> GenerationReport:
    """Convert the rows of ``source`` into ``out_dir/imported.jsonl``, ``drops.jsonl`` and ``summary.json``.

    Args:
        source: see :func:`open_source`.
        out_dir: the output folder (its three files are replaced).
        kind: the records' kind (the data source name training counts tokens by).
        format: ``auto`` (detect per row) or one of :data:`FORMATS`.
        limit: read at most this many rows (in source order).
        counter: the target tokenizer for token counts (``None``: no counts).
        dedup: drop exact and near-duplicate rows (the first of a group is kept); ``None``: keep them all.
        progress: called once the rows are converted.

    Raises:
        UserError: an unknown format or kind, or a source that cannot be read at all.
    """
    if format != "auto" and format not in FORMATS:
        raise UserError(f"unknown format '{format}' (expected auto, {', '.join(FORMATS)})", key="--format")
    if not kind.strip():
        raise UserError("the kind must not be empty", key="--kind")
    _check_out_dir(out_dir)
    records: list[dict[str, Any]] = []
    drops: list[dict[str, Any]] = []
    rows = 0
    for index, row in read_rows(source):
        if limit is not None and rows >= limit:
            break
        rows += 1
        detected: str | None = None
        try:
            if isinstance(row, RowProblem):
                raise row
            detected, content = convert_row(row, format=format)
            source_id = row.get("id") if isinstance(row.get("id"), str | int) else None
            record = make_record(
                record_id=content_hash(GENERATOR, source.sha256, index, content),
                kind=kind,
                provenance=_provenance(source, index, detected),
                meta={"source_id": None if source_id is None else str(source_id)},
                **content,
            )
            if counter is not None:
                _count(counter, record)
        except RowProblem as problem:
            drops.append(
                drop_record(
                    item_id=f"{source.sha256[:16]}-row-{index}",
                    kind=kind,
                    stage="import",
                    reason=problem.reason,
                    detail=problem.detail,
                    output=_raw(row),
                    provenance=_provenance(source, index, detected),
                )
            )
            continue
        records.append(record)
    records = _deduplicate(records, drops, dedup)
    formats = Counter(str(r["provenance"]["imported"]["format"]) for r in records)
    if progress is not None:
        progress(GENERATOR, rows, rows)
    return _write(source, out_dir, kind, records, drops, rows, formats, counter)


def _deduplicate(
    records: list[dict[str, Any]], drops: list[dict[str, Any]], dedup: DedupSettings | None
) -> list[dict[str, Any]]:
    """The records kept by dedup (each with its dedup verdict); the duplicates are appended to ``drops``."""
    if dedup is None or not records:
        for record in records:
            record["provenance"]["filters"]["dedup"] = verdict(None, reason="disabled")
        return records
    result = deduplicate(
        [record_content(r) for r in records],
        ngram_threshold=dedup.ngram_threshold,
        embedding_threshold=dedup.embedding_threshold,
        embed=dedup.embed,
    )
    for d in result.duplicates:
        record, first = records[d.index], records[d.of]
        prov = record["provenance"]
        prov["filters"]["dedup"] = verdict(False, score=d.similarity, reason=d.reason)
        row, of_row = prov["imported"]["row"], first["provenance"]["imported"]["row"]
        drops.append(
            drop_record(
                item_id=record["id"],
                kind=record["kind"],
                stage="dedup",
                reason=d.reason,
                detail=f"row {row} duplicates row {of_row} (similarity {d.similarity:g})",
                output=record_content(record),
                provenance=prov,
            )
        )
    passes = "exact+ngram" + ("+embedding" if dedup.embed else "")
    kept = [records[i] for i in result.kept]
    for record in kept:
        record["provenance"]["filters"]["dedup"] = verdict(True, reason=passes)
    return kept


def _count(counter: TokenCounter, record: dict[str, Any]) -> None:
    from jinja2 import TemplateError

    try:
        counter.stamp(record)
    except TemplateError as e:  # e.g. "roles must alternate": the trainer could not render it either
        raise RowProblem("chat_template_error", str(e)) from None


def _check_out_dir(out_dir: Path) -> None:
    """Refuse a folder holding another generator's output: its drops and summary would be replaced."""
    summary = out_dir / SUMMARY
    if not summary.exists():
        return
    try:
        generator = json.loads(summary.read_text(encoding="utf-8")).get("generator")
    except (json.JSONDecodeError, AttributeError):
        generator = None
    if generator != GENERATOR:
        raise UserError(
            "holds another dataset's summary.json and drops.jsonl; import into a folder of its own",
            file=out_dir,
            key="--out",
        )


def _write(
    source: ImportSource,
    out_dir: Path,
    kind: str,
    records: Sequence[dict[str, Any]],
    drops: Sequence[dict[str, Any]],
    rows: int,
    formats: Counter[str],
    counter: TokenCounter | None,
) -> GenerationReport:
    out_file = output_path(out_dir, GENERATOR)
    write_jsonl(out_file, records)
    write_jsonl(out_dir / DROPS, drops)
    report = GenerationReport(
        generator=GENERATOR,
        kind=kind,
        out_file=str(out_file),
        requested=rows,
        kept=len(records),
        unfinished=0,
        drops=dict(sorted(Counter(d["reason"] for d in drops).items())),
        model_errors={},
        tokens=sum(int(r["tokens"]["count"]) for r in records if "tokens" in r),
        tokenizer=counter.name if counter else None,
        tokens_exact=counter.exact if counter else None,
        coverage={},  # imported rows teach no principle id of ours
        uncovered=[],
        stages={
            "import": {"rows": rows, "kept": len(records), "dropped": len(drops)},
            "formats": dict(formats),
        },
    )
    atomic_write_json(out_dir / SUMMARY, {**report.to_dict(), "source": source.to_dict()})
    return report


def generate_imported(
    config: ExperimentConfig,
    source: ImportedSource,
    constitution: Constitution,
    out_dir: Path,
    *,
    counter: TokenCounter | None = None,
    progress: Progress | None = None,
) -> GenerationReport:
    """The experiment's ``imported`` data source: :func:`import_dataset` on ``source.path``.

    The path is resolved against the experiment file's folder and recorded as written in the config.
    ``constitution`` is unused (imported rows carry no principle ids); it keeps the generators' signature.
    """
    from teachwhy.data.setup import make_dedup

    opened = open_source(config.resolve(source.path), label=str(source.path), split=source.split)
    return import_dataset(
        opened,
        out_dir,
        kind=source.kind,
        format=source.format,
        limit=source.count,
        counter=counter,
        dedup=make_dedup(source),
        progress=progress,
    )


def imported_sha256(config: ExperimentConfig, source: ImportedSource, *, key: str) -> str:
    """The imported file's hash, for the experiment's stage key (a changed file is imported again).

    Raises:
        UserError: the file is missing (naming the experiment file and ``key``, the setting that names it).
    """
    path = config.resolve(source.path)
    if not path.exists():
        raise UserError(f"file not found: {path}", file=config.source, key=key)
    return source_sha256(path)
