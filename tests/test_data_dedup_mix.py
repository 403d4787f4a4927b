"""Dedup on planted duplicates, budgeted mixing arithmetic, stats, prompts, and the data CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from teachwhy.cli import app
from teachwhy.data.bench import synthetic_texts
from teachwhy.data.dedup import deduplicate, embedding_duplicates, ngram_duplicates
from teachwhy.data.mix import build_mix
from teachwhy.data.records import make_record, provenance
from teachwhy.errors import UserError
from teachwhy.prompts import load_prompt, parse_prompt
from teachwhy.storage import read_jsonl, write_jsonl

BASE = (
    "The assistant told the harbour master plainly that it had misread the tide table, because a pilot who "
    "trusts a hidden error can run aground, and an honest correction costs only a little pride."
)


def test_exact_and_ngram_passes_drop_planted_copies_and_keep_the_first() -> None:
    texts = [
        BASE,
        "Completely different: a farming cooperative argues over water rights during a long summer drought.",
        BASE.upper().replace(",", ""),  # exact after normalisation
        BASE.replace("little pride", "little dignity"),  # a near-duplicate (one word)
    ]
    result = deduplicate(texts)
    assert result.kept == [0, 1]
    assert [(d.index, d.reason, d.of) for d in result.duplicates] == [
        (2, "duplicate_exact", 0),
        (3, "near_duplicate_ngram", 0),
    ]


def test_ngram_pass_finds_most_planted_near_duplicates_and_no_false_ones() -> None:
    texts, planted = synthetic_texts(2000, seed=3)
    found = ngram_duplicates(texts, threshold=0.7)
    assert planted * 0.9 <= len(found) <= planted
    for d in found:
        assert d.of < d.index and d.similarity >= 0.7


def test_embedding_pass_on_lsh_buckets_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((600, 32)).astype(np.float32)
    vectors[500:] = vectors[:100] + 0.05 * rng.standard_normal((100, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    found = embedding_duplicates(vectors, threshold=0.95, bucket_size=8)
    assert sorted(d.index for d in found) == list(range(500, 600))
    assert all(d.of == d.index - 500 for d in found)


def test_minilm_embeddings_catch_a_paraphrase_that_ngrams_miss() -> None:
    from teachwhy.data.embeddings import default_embedder

    texts = [
        "The assistant admitted its mistake in the tide table to the harbour master right away.",
        "Right away, the assistant owned up to the harbour master about its tide-table error.",
        "A recipe for sourdough bread with a long cold fermentation.",
    ]
    assert ngram_duplicates(texts) == []
    result = deduplicate(texts, embedding_threshold=0.8, embed=default_embedder().encode)
    assert result.kept == [0, 2] and result.duplicates[0].reason == "near_duplicate_embedding"


def _records(name: str, sizes: list[int]) -> list[dict[str, Any]]:
    out = []
    for i, size in enumerate(sizes):
        prov = provenance(
            generator=name,
            stage="write",
            index=i,
            constitution_sha256="c",
            principle_ids=["p/a"],
            generator_model="m",
            prompt_file="f",
            prompt_sha256="h",
            sampling={"temperature": 0.0, "top_p": 1.0, "max_tokens": 9},
            seed=i,
        )
        out.append(
            make_record(
                record_id=f"{name}{i}",
                kind="document",
                text=f"{name} {i}",
                provenance=prov,
                tokens={"tokenizer": "t", "count": size, "exact": True},
            )
        )
    return out


def test_mix_hits_each_share_within_one_item_and_never_overshoots_by_more() -> None:
    rng = np.random.default_rng(1)
    sources = {
        "advice": _records("a", [int(x) for x in rng.integers(50, 400, 300)]),
        "documents": _records("d", [int(x) for x in rng.integers(200, 900, 300)]),
    }
    for budget in (5_000, 12_345, 40_000):
        records, report = build_mix(sources, {"advice": 0.6, "documents": 0.4}, budget, seed=2)
        largest = max(r["tokens"]["count"] for r in records)
        assert abs(report.total_tokens - budget) <= largest / 2 + 1
        for share in report.sources:
            assert abs(share.achieved_tokens - share.target_tokens) <= largest
            assert share.achieved_tokens == sum(
                r["tokens"]["count"] for r in records if r["mix"]["source"] == share.name
            )
        assert len({r["id"] for r in records}) == len(records)


def test_a_source_that_runs_out_reports_its_shortfall_and_is_not_made_up() -> None:
    sources = {"advice": _records("a", [100] * 5), "documents": _records("d", [100] * 100)}
    _, report = build_mix(sources, {"advice": 0.5, "documents": 0.5}, 2000)
    advice, documents = report.sources
    assert advice.exhausted and advice.achieved_tokens == 500 and advice.shortfall_tokens == 500
    assert documents.achieved_tokens == 1000  # its own share only
    repeated, report = build_mix(sources, {"advice": 0.5, "documents": 0.5}, 2000, allow_repeat=True)
    assert report.sources[0].achieved_tokens == 1000 and report.sources[0].repeated_items == 5
    assert any(r["mix"]["repeat"] == 1 and r["id"].endswith("~r1") for r in repeated)


def test_mixed_text_and_chat_file_loads_with_hf_datasets(tmp_path: Path) -> None:
    from datasets import load_dataset

    chat = _records("c", [30, 30])
    for r in chat:
        del r["text"]
        r["kind"] = "advice"
        r["messages"] = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    records, _ = build_mix(
        {"documents": _records("d", [30, 30]), "advice": chat}, {"documents": 1, "advice": 1}, 120
    )
    write_jsonl(tmp_path / "mix.jsonl", records)
    dataset = load_dataset("json", data_files=str(tmp_path / "mix.jsonl"), split="train")
    assert dataset.num_rows == 4 and {"text", "messages", "mix"} <= set(dataset.column_names)


def test_prompt_files_render_and_reject_undeclared_variables(tmp_path: Path) -> None:
    prompt = load_prompt("stories_write")
    rendered = prompt.render(setting="a lighthouse", pressure="p", principle_title="t", principle_text="x")
    assert "a lighthouse" in rendered.user and rendered.sha256 == prompt.sha256
    with pytest.raises(UserError, match="not supplied"):
        prompt.render(setting="a lighthouse")
    with pytest.raises(UserError, match="not declared"):
        parse_prompt("---\nvariables: [a]\n---\n{{a}} {{b}}", name="x", path=tmp_path / "x.md")


def test_cli_mix_and_stats(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "data" / "a.jsonl", _records("a", [100] * 10))
    write_jsonl(tmp_path / "data" / "drops.jsonl", [{"id": "x", "reason": "truncated"}])
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "data",
            "mix",
            "--source",
            f"a={tmp_path / 'data' / 'a.jsonl'}:1",
            "--budget",
            "450",
            "--out",
            str(tmp_path / "mix.jsonl"),
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "mix.report.json").read_text())
    assert report["total_tokens"] == 400 and len(read_jsonl(tmp_path / "mix.jsonl")) == 4
    result = runner.invoke(
        app, ["data", "stats", str(tmp_path / "data"), "--config", str(tmp_path / "none.yaml")]
    )
    assert result.exit_code == 0, result.output
    assert "truncated 1" in result.output and "p/a" in result.output


def test_stats_list_uncovered_principles_and_drop_reasons(tmp_path: Path) -> None:
    from teachwhy.constitution import example_constitution_path, load_constitution
    from teachwhy.data.stats import data_stats

    constitution = load_constitution(example_constitution_path())
    first = constitution.principles[0].id
    records = _records("d", [10, 20])
    for r in records:
        r["provenance"]["principle_ids"] = [first]
    write_jsonl(tmp_path / "docs" / "documents.jsonl", records)
    write_jsonl(
        tmp_path / "docs" / "drops.jsonl",
        [{"id": "a", "reason": "truncated"}, {"id": "b", "reason": "refusal"}],
    )
    write_jsonl(tmp_path / "docs" / ".work" / "write.jsonl", records)  # resume state is not counted twice
    stats = data_stats(tmp_path, constitution=constitution)
    assert stats.kinds["document"].records == 2 and stats.kinds["document"].tokens == 30
    assert stats.coverage[first] == 2 and first not in stats.uncovered
    assert len(stats.uncovered) == len(constitution.principles) - 1
    assert stats.drops == {"truncated": 1, "refusal": 1}


def test_arm_mix_uses_the_arms_budget_and_weights(tmp_path: Path) -> None:
    from teachwhy.config import ArmData, DocumentsSource, StoriesSource
    from teachwhy.data.mix import mix_for_arm

    write_jsonl(tmp_path / "d.jsonl", _records("d", [100] * 20))
    write_jsonl(tmp_path / "s.jsonl", _records("s", [100] * 20))
    data = ArmData(
        documents=DocumentsSource(),
        stories=StoriesSource(),
        budget_tokens=2000,
        weights={"documents": 3, "stories": 1},
    )
    report = mix_for_arm(
        data, {"documents": tmp_path / "d.jsonl", "stories": tmp_path / "s.jsonl"}, tmp_path / "m.jsonl"
    )
    assert [(s.name, s.achieved_tokens) for s in report.sources] == [("documents", 1500), ("stories", 500)]


def test_generation_key_changes_with_what_the_output_depends_on() -> None:
    from teachwhy.config import ExperimentConfig, StoriesSource
    from teachwhy.constitution import example_constitution_path, load_constitution
    from teachwhy.data.setup import generation_key

    config = ExperimentConfig()
    constitution = load_constitution(example_constitution_path())
    key = generation_key(config, "stories", StoriesSource(count=2), constitution)
    assert key == generation_key(config, "stories", StoriesSource(count=2), constitution)
    assert key != generation_key(config, "stories", StoriesSource(count=3), constitution)
    config.models.generator.model = "openai-api/local/other"
    assert key != generation_key(config, "stories", StoriesSource(count=2), constitution)
