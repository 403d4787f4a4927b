"""`teachwhy data export`: a folder that datasets.load_from_disk reloads, with a dataset card."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from datasets import load_from_disk
from typer.testing import CliRunner

from teachwhy.cli import app
from teachwhy.constitution import example_constitution_path, load_constitution
from teachwhy.data.records import drop_record, make_record, provenance
from teachwhy.errors import UserError
from teachwhy.storage import write_jsonl

CONSTITUTION = load_constitution(example_constitution_path())
PRINCIPLE = CONSTITUTION.principles[0]


def _generated(i: int, kind: str) -> dict[str, Any]:
    prov = provenance(
        generator="advice",
        stage="answer",
        index=i,
        constitution_sha256=CONSTITUTION.sha256,
        principle_ids=[PRINCIPLE.id],
        generator_model="openai-api/local/writer",
        prompt_file="advice/answer.md",
        prompt_sha256="abc",
        sampling={"temperature": 0.8, "top_p": 0.95, "max_tokens": 256},
        seed=i,
    )
    tokens = {"tokenizer": "embedded", "count": 10 + i, "exact": True}
    if kind == "document":
        return make_record(record_id=f"d{i}", kind=kind, provenance=prov, text=f"Doc {i}.", tokens=tokens)
    messages = [{"role": "user", "content": f"Q{i}"}, {"role": "assistant", "content": f"A{i}"}]
    return make_record(
        record_id=f"a{i}",
        kind=kind,
        provenance=prov,
        messages=messages,
        meta={"domain": "work"},
        tokens=tokens,
    )


def data_folder(root: Path) -> Path:
    """Two generators' outputs, one drops file, and a record repeated in a second file."""
    advice = [_generated(i, "advice") for i in range(3)]
    write_jsonl(root / "advice" / "advice.jsonl", advice)
    write_jsonl(root / "documents" / "documents.jsonl", [_generated(i, "document") for i in range(2)])
    write_jsonl(root / "mix.jsonl", advice[:1])
    drop = drop_record(
        item_id="x",
        kind="advice",
        stage="judge",
        reason="low_score",
        detail="3 < 6",
        output="",
        provenance={},
    )
    write_jsonl(root / "advice" / "drops.jsonl", [drop, drop])
    return root


def test_export_reloads_with_datasets_and_its_card_counts_kinds_principles_drops_models_and_licence(
    tmp_path: Path,
) -> None:
    source = data_folder(tmp_path / "data")
    out = tmp_path / "hf"
    result = CliRunner().invoke(
        app,
        [
            *("data", "export", str(source), "-o", str(out), "--license", "cc-by-4.0"),
            *("--name", "demo-set", "--constitution", str(example_constitution_path())),
        ],
    )
    assert result.exit_code == 0, result.output

    ds = load_from_disk(str(out))
    assert ds.num_rows == 5  # the record repeated in mix.jsonl is exported once
    assert sorted(ds["kind"]) == ["advice"] * 3 + ["document"] * 2
    rows = {r["id"]: r for r in ds}
    assert rows["a1"]["messages"] == [
        {"role": "user", "content": "Q1"},
        {"role": "assistant", "content": "A1"},
    ]
    assert rows["a1"]["text"] is None and rows["d0"]["messages"] is None and rows["d0"]["text"] == "Doc 0."
    assert rows["a1"]["tokens"] == {"tokenizer": "embedded", "count": 11, "exact": True}
    assert rows["a1"]["principle_ids"] == [PRINCIPLE.id]
    assert json.loads(rows["a1"]["provenance"])["generator_model"] == "openai-api/local/writer"
    assert json.loads(rows["a1"]["meta"]) == {"domain": "work"}

    card = (out / "README.md").read_text()
    header = yaml.safe_load(card.split("---")[1])
    assert header["license"] == "cc-by-4.0" and header["pretty_name"] == "demo-set"
    assert "| advice | 3 | 33 | 0 |" in card and "| document | 2 | 21 | 0 |" in card
    assert "5 records" in card and "54 tokens" in card
    assert f"| `{PRINCIPLE.id}` | {PRINCIPLE.title} | 5 |" in card
    assert "| low_score | 2 |" in card
    assert "| openai-api/local/writer | 5 |" in card
    assert f"| `{CONSTITUTION.sha256}` | 5 |" in card


def test_export_never_replaces_a_folder_unless_forced_and_checks_the_licence_id(tmp_path: Path) -> None:
    from teachwhy.data.export import export_dataset

    source = data_folder(tmp_path / "data")
    out = tmp_path / "hf"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(UserError, match="pass --force"):
        export_dataset(source, out)
    assert (out / "keep.txt").read_text() == "mine"
    with pytest.raises(UserError, match="licence id"):
        export_dataset(source, tmp_path / "other", license="My Licence: see file")
    report = export_dataset(source, out, force=True)
    assert report.license == "unknown" and not (out / "keep.txt").exists()
    assert "license: unknown" in (out / "README.md").read_text()
    assert load_from_disk(str(out)).num_rows == 5


def test_export_of_a_single_jsonl_file(tmp_path: Path) -> None:
    from teachwhy.data.export import export_dataset

    path = tmp_path / "advice.jsonl"
    write_jsonl(path, [_generated(i, "advice") for i in range(2)])
    report = export_dataset(path, tmp_path / "advice-hf", license="mit")
    assert report.files == ["advice.jsonl"] and report.drops == {}
    assert load_from_disk(str(tmp_path / "advice-hf"))["source_file"] == ["advice.jsonl", "advice.jsonl"]
