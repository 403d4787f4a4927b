"""Augmentation: seeded rates, tools never used by the conversation, system prompts, parent links."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from data2_scripts import quiet_config
from teachwhy.config import AugmentSource
from teachwhy.constitution import Constitution, example_constitution_path, load_constitution
from teachwhy.data.augment import generate_augment, operator_prompts
from teachwhy.data.records import make_record, provenance, validate_record
from teachwhy.prompts import load_pool
from teachwhy.storage import read_jsonl


@pytest.fixture(scope="module")
def constitution() -> Constitution:
    return load_constitution(example_constitution_path())


def _chat(n: int, *, system: bool = False, text: str = "") -> dict[str, Any]:
    prov = provenance(
        generator="advice",
        stage="revise",
        index=n,
        constitution_sha256="abc",
        principle_ids=("honesty/x",),
        generator_model="m",
        prompt_file="p",
        prompt_sha256="h",
        sampling={},
        seed=0,
    )
    messages = [
        {"role": "user", "content": f"Question {n}. {text}"},
        {"role": "assistant", "content": f"Answer {n}."},
    ]
    if system:
        messages.insert(0, {"role": "system", "content": "Operator says hi."})
    record = make_record(record_id=f"r{n}", kind="advice", provenance=prov, messages=messages, meta={})
    record["tokens"] = {"tokenizer": "t", "count": 7, "exact": True}
    return record


def _run(
    tmp_path: Path, constitution: Constitution, records: list[dict[str, Any]], **settings: Any
) -> list[Any]:
    generate_augment(quiet_config(), AugmentSource(**settings), constitution, tmp_path, records=records)
    return read_jsonl(tmp_path / "augment.jsonl")


def test_rates_are_met_and_each_draw_is_independent(tmp_path: Path, constitution: Constitution) -> None:
    records = [_chat(n) for n in range(2000)]
    out = _run(tmp_path, constitution, records, tool_rate=0.3, system_prompt_rate=0.6, seed=1)
    assert len(out) == 2000
    tools = [bool(r["meta"]["tools_added"]) for r in out]
    system = [bool(r["meta"]["system_prompt"]) for r in out]
    assert sum(tools) / 2000 == pytest.approx(0.3, abs=0.04)
    assert sum(system) / 2000 == pytest.approx(0.6, abs=0.04)
    both = sum(t and s for t, s in zip(tools, system, strict=True)) / 2000
    assert both == pytest.approx(0.18, abs=0.03)
    for record, original in zip(out, records, strict=True):
        validate_record(record)
        assert record["provenance"]["parent_ids"] == [original["id"]] and record["kind"] == "augmented"
        assert record["provenance"]["principle_ids"] == ["honesty/x"] and "tokens" not in record
        assert record["messages"][-2:] == original["messages"]  # the conversation itself is untouched
        has_system = record["messages"][0]["role"] == "system"
        assert has_system == bool(record["meta"]["tools_added"] or record["meta"]["system_prompt"])


def test_the_same_seed_gives_the_same_dataset_and_another_seed_a_different_one(
    tmp_path: Path, constitution: Constitution
) -> None:
    records = [_chat(n) for n in range(50)]
    a = _run(tmp_path / "a", constitution, records, seed=5)
    b = _run(tmp_path / "b", constitution, records, seed=5)
    c = _run(tmp_path / "c", constitution, records, seed=6)
    assert a == b and a != c


def test_rates_of_zero_and_one(tmp_path: Path, constitution: Constitution) -> None:
    records = [_chat(n) for n in range(40)]
    none = _run(tmp_path / "none", constitution, records, tool_rate=0.0, system_prompt_rate=0.0)
    assert all(r["messages"] == o["messages"] for r, o in zip(none, records, strict=True))
    every = _run(tmp_path / "all", constitution, records, tool_rate=1.0, system_prompt_rate=1.0, max_tools=2)
    for record in every:
        assert 1 <= len(record["meta"]["tools_added"]) <= 2 and record["meta"]["system_prompt"]
        system = record["messages"][0]["content"]
        assert "<tool_call>" in system and all(
            f"- {name}:" in system for name in record["meta"]["tools_added"]
        )


def test_tools_the_conversation_mentions_are_never_added(tmp_path: Path, constitution: Constitution) -> None:
    names = [str(t["name"]) for t in load_pool("augment/tools")]
    mentioned = names[: len(names) - 2]
    records = [_chat(n, text="I tried " + ", ".join(mentioned)) for n in range(30)]
    out = _run(tmp_path, constitution, records, tool_rate=1.0, max_tools=3)
    for record in out:
        assert record["meta"]["tools_added"] and set(record["meta"]["tools_added"]) <= set(names[-2:])


def test_an_existing_system_prompt_is_kept_and_tools_are_appended(
    tmp_path: Path, constitution: Constitution
) -> None:
    records = [_chat(n, system=True) for n in range(10)]
    out = _run(tmp_path, constitution, records, tool_rate=1.0, system_prompt_rate=1.0)
    for record in out:
        assert record["messages"][0]["content"].startswith(
            "Operator says hi.\n\nYou have access to the tools"
        )
        assert record["meta"]["system_prompt"] is None and record["meta"]["had_system_prompt"] is True
    summary = (tmp_path / "summary.json").read_text()
    assert '"had_system_prompt": 10' in summary


def test_the_system_prompt_pool_is_diverse() -> None:
    prompts = operator_prompts()
    assert len(prompts) >= 300 and len({t for _, t in prompts}) == len(prompts)
    assert all("{" not in t for _, t in prompts)
