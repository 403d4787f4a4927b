"""`teachwhy data export`: a folder of records as a Hugging Face dataset with a dataset card.

The output folder is what ``datasets``' ``save_to_disk`` writes (``datasets.load_from_disk(OUT)`` loads it,
and ``.push_to_hub(REPO)`` pushes it) plus ``README.md``: a dataset card whose YAML header carries the licence
the user chose, and whose body gives the counts by kind and principle, the drop reasons, the generator
models, the constitution hash(es) and the imported sources (template: ``templates/dataset_card.md``).

Columns are the same for every kind, so one schema holds documents and conversations side by side:
``id``, ``kind``, ``text`` (documents, else null), ``messages`` (chat, else null), ``principle_ids``,
``tokens`` (``tokenizer``, ``count``, ``exact``; null when not counted), ``meta`` and ``provenance`` (each
record's objects as JSON strings, since their keys differ by kind) and ``source_file`` (where in the
exported folder the record came from). A record found in several files (the same id) is exported once.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from teachwhy import __version__
from teachwhy.constitution import Constitution
from teachwhy.data.records import validate_record
from teachwhy.data.stats import dataset_files
from teachwhy.errors import UserError
from teachwhy.storage import iter_jsonl

CARD = "README.md"
_LICENSE = re.compile(r"^[a-z0-9][a-z0-9.+-]*$")


@dataclass
class ExportReport:
    """What was exported (also the numbers the card shows)."""

    out_dir: str
    records: int
    files: list[str]
    duplicates: int
    kinds: dict[str, dict[str, int]]
    principles: dict[str, int]
    drops: dict[str, int]
    generator_models: dict[str, int]
    constitutions: dict[str, int]
    imported_sources: dict[str, int]
    tokenizers: dict[str, int]
    license: str
    extra: dict[str, Any] = field(default_factory=dict)


def _features() -> Any:
    from datasets import Features, Value

    return Features(
        {
            "id": Value("string"),
            "kind": Value("string"),
            "text": Value("string"),
            "messages": [{"role": Value("string"), "content": Value("string")}],
            "principle_ids": [Value("string")],
            "tokens": {"tokenizer": Value("string"), "count": Value("int64"), "exact": Value("bool")},
            "meta": Value("string"),
            "provenance": Value("string"),
            "source_file": Value("string"),
        }
    )


def _row(record: dict[str, Any], source_file: str) -> dict[str, Any]:
    tokens = record.get("tokens")
    prov = record.get("provenance") or {}
    return {
        "id": record["id"],
        "kind": record["kind"],
        "text": record.get("text"),
        "messages": record.get("messages"),
        "principle_ids": [str(p) for p in prov.get("principle_ids") or []],
        "tokens": (
            {
                "tokenizer": tokens.get("tokenizer"),
                "count": tokens.get("count"),
                "exact": tokens.get("exact"),
            }
            if isinstance(tokens, dict)
            else None
        ),
        "meta": json.dumps(record.get("meta") or {}, ensure_ascii=False, sort_keys=True),
        "provenance": json.dumps(prov, ensure_ascii=False, sort_keys=True),
        "source_file": source_file,
    }


def collect(source: Path) -> tuple[list[dict[str, Any]], list[str], int, Counter[str]]:
    """The records of a JSONL file or of every dataset file under a folder, and the folder's drop reasons.

    Returns:
        (rows, files read, records skipped as repeats of an id already read, drop reasons).

    Raises:
        UserError: the path does not exist, holds no records, or a record is malformed (file and line).
    """
    if not source.exists():
        raise UserError("not found", file=source)
    root = source if source.is_dir() else source.parent
    files = dataset_files(source) if source.is_dir() else [source]
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    duplicates = 0
    for path in files:
        relative = str(path.relative_to(root))
        for line, record in enumerate(iter_jsonl(path), start=1):
            validate_record(record, file=str(path), line=line)
            if record["id"] in seen:
                duplicates += 1
                continue
            seen.add(record["id"])
            rows.append(_row(record, relative))
    if not rows:
        raise UserError("holds no records to export", file=source)
    drops: Counter[str] = Counter()
    if source.is_dir():
        for path in sorted(source.rglob("drops.jsonl")):
            drops.update(str(d.get("reason")) for d in iter_jsonl(path))
    return rows, [str(p.relative_to(root)) for p in files], duplicates, drops


def export_dataset(
    source: Path,
    out_dir: Path,
    *,
    license: str | None = None,
    name: str | None = None,
    constitution: Constitution | None = None,
    force: bool = False,
) -> ExportReport:
    """Write ``source``'s records to ``out_dir`` as a saved HF dataset with a dataset card.

    Args:
        source: a dataset JSONL file, or a folder searched like `data stats` does.
        out_dir: the folder to write; it must not exist (or be empty) unless ``force``.
        license: the licence identifier for the card (a Hub id such as ``cc-by-4.0``); ``None``: unknown.
        name: the dataset's pretty name (default: the source's name).
        constitution: for principle titles on the card.
        force: replace an existing ``out_dir``.

    Raises:
        UserError: a bad licence id, an existing output, or unreadable records.
    """
    from datasets import Dataset

    license_id = (license or "unknown").strip()
    if not _LICENSE.match(license_id):
        raise UserError(
            f"'{license_id}' is not a licence id such as apache-2.0 or cc-by-4.0", key="--license"
        )
    if out_dir.exists() and any(out_dir.iterdir()) and not force:
        raise UserError("already exists and is not empty (pass --force to replace it)", file=out_dir)
    rows, files, duplicates, drops = collect(source)
    report = _report(rows, files, duplicates, drops, out_dir, license_id)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}."))
    try:
        Dataset.from_list(rows, features=_features()).save_to_disk(str(staging))
        card = dataset_card(report, name=name or source.resolve().stem, constitution=constitution)
        (staging / CARD).write_text(card, encoding="utf-8")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staging.rename(out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return report


def _report(
    rows: list[dict[str, Any]],
    files: list[str],
    duplicates: int,
    drops: Counter[str],
    out_dir: Path,
    license_id: str,
) -> ExportReport:
    kinds: dict[str, dict[str, int]] = {}
    principles: Counter[str] = Counter()
    models: Counter[str] = Counter()
    constitutions: Counter[str] = Counter()
    imported: Counter[str] = Counter()
    tokenizers: Counter[str] = Counter()
    for row in rows:
        entry = kinds.setdefault(row["kind"], {"records": 0, "tokens": 0, "uncounted": 0})
        entry["records"] += 1
        if row["tokens"] is not None and isinstance(row["tokens"]["count"], int):
            entry["tokens"] += row["tokens"]["count"]
            tokenizers[str(row["tokens"]["tokenizer"])] += 1
        else:
            entry["uncounted"] += 1
        principles.update(row["principle_ids"])
        prov = json.loads(row["provenance"])
        models[str(prov.get("generator_model") or "not recorded")] += 1
        constitutions[str(prov.get("constitution_sha256") or "none")] += 1
        source = prov.get("imported")
        if isinstance(source, dict):
            imported[f"{source.get('file')} (sha256 {str(source.get('sha256'))[:16]})"] += 1
    return ExportReport(
        out_dir=str(out_dir),
        records=len(rows),
        files=files,
        duplicates=duplicates,
        kinds=dict(sorted(kinds.items())),
        principles=dict(sorted(principles.items())),
        drops=dict(sorted(drops.items())),
        generator_models=dict(models.most_common()),
        constitutions=dict(constitutions.most_common()),
        imported_sources=dict(imported.most_common()),
        tokenizers=dict(tokenizers.most_common()),
        license=license_id,
    )


def _size_category(n: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K")):
        if n < limit:
            return label
    return "100K<n<1M" if n < 1_000_000 else "n>1M"


def dataset_card(report: ExportReport, *, name: str, constitution: Constitution | None = None) -> str:
    """The card's Markdown: a YAML header the Hub reads, then the tables of :class:`ExportReport`."""
    from jinja2 import Environment, StrictUndefined

    header = {
        "license": report.license,
        "pretty_name": name,
        "size_categories": [_size_category(report.records)],
        "task_categories": ["text-generation"],
        "tags": ["teachwhy", "alignment", "synthetic"],
    }
    titles = {p.id: p.title for p in constitution.principles} if constitution else {}
    template = (
        resources.files("teachwhy").joinpath("templates", "dataset_card.md").read_text(encoding="utf-8")
    )
    env = Environment(undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False)
    return env.from_string(template).render(
        front_matter=yaml.safe_dump(header, sort_keys=False, allow_unicode=True).strip(),
        name=name,
        report=report,
        titles=titles,
        version=__version__,
        total_tokens=sum(k["tokens"] for k in report.kinds.values()),
    )
