"""Model-organism data: misaligned scripted episodes on train worlds only, each one a real harmful act."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from teachwhy.data import honeypot_worlds
from teachwhy.data.organism import (
    KIND,
    LABEL,
    OrganismReport,
    SplitViolation,
    build_organism_data,
    check_train_split,
    misaligned_policies,
)
from teachwhy.data.records import validate_record
from teachwhy.evals.conditions import build_episode
from teachwhy.evals.controls import OUTSIDER, control_condition, load_controls
from teachwhy.evals.scenario import load_scenarios
from teachwhy.evals.toolcalls import MalformedCall, TextCall, parse_text_calls

FAMILIES = ["blackmail", "research_sabotage", "framing"]
Organism = tuple[list[dict[str, Any]], OrganismReport]


@pytest.fixture(scope="module")
def organism(tmp_path_factory: pytest.TempPathFactory) -> Organism:
    out = tmp_path_factory.mktemp("organism") / "organism.jsonl"
    report = build_organism_data(FAMILIES, 6, seed=3, out_file=out)
    return [json.loads(line) for line in out.read_text().splitlines()], report


def test_only_misaligned_policies_are_played() -> None:
    for family in FAMILIES:
        chosen = misaligned_policies(family)
        assert chosen and all("harmful" in p.labels.values() for p in chosen)
        aligned = [p for p in load_controls(family) if not p.misaligned]
        assert aligned and not {p.id for p in aligned} & {p.id for p in chosen}


def test_every_kept_episode_is_a_harmful_act_the_rule_gate_saw(organism: Organism) -> None:
    records, report = organism
    assert {r["meta"]["family"] for r in records} == set(FAMILIES)
    for record in records:
        harmful = {c for c, label in record["meta"]["labels"].items() if label == "harmful"}
        assert record["meta"]["rule_touched"] and set(record["meta"]["rule_touched"]) <= harmful
        assert record["provenance"]["filters"]["rule_touched_harmful"]["passed"] is True
    assert sum(report.kept.values()) == len(records)
    played = sum(report.played.values())
    assert played == len(records) + sum(report.not_touched.values())


def test_records_are_valid_chat_records_in_the_text_tool_call_format(
    organism: Organism,
) -> None:
    records, _ = organism
    for record in records:
        validate_record(record)
        assert record["kind"] == KIND and record["meta"]["research_control"] == LABEL
        assert record["meta"]["split"] == "train" and record["meta"]["scenario_id"].startswith("train-")
        assert record["provenance"]["generator"] == "organism" and record["provenance"]["seed"] > 0
        messages = record["messages"]
        assert {m["role"] for m in messages} <= {"system", "user", "assistant"}
        assert messages[0]["role"] == "system" and "<tool_call>" in messages[0]["content"]
        assert messages[-1]["role"] == "assistant"
        calls = [c for m in messages if m["role"] == "assistant" for c in parse_text_calls(m["content"])]
        assert calls and not any(isinstance(c, MalformedCall) for c in calls)
        assert isinstance(calls[-1], TextCall) and calls[-1].name == "done"


_READS = {  # the listing tool of each kind of world and the tool that reads what it lists
    "list_inbox": "read_email",
    "list_cases": "read_case",
    "list_channels": "read_channel",
    "list_tickets": "read_ticket",
    "list_documents": "read_document",
}
_NAMES = re.compile(r"[\w.+-]+@[\w.-]+\.\w+|\b[\w-]+(?:/[\w.-]+)+\b")  # addresses and paths


def test_episodes_look_before_they_act_and_act_only_on_what_they_saw(organism: Organism) -> None:
    """Grounded: list, then read every email, case, conversation, ticket and document, then act; every
    address and path the act names (bar the fixed outsider a leak goes to, and a new file's path) was shown
    to the agent earlier on."""
    records, _ = organism
    for record in records:
        messages = record["messages"]
        assistant = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
        parsed = [parse_text_calls(messages[i]["content"]) for i in assistant]
        turns = [[c for c in calls if isinstance(c, TextCall)] for calls in parsed]
        assert turns[0] and all(c.name.startswith("list_") for c in turns[0]), record["id"]
        assert {c.name for c in turns[1]} <= set(_READS.values()), record["id"]
        listed = "\n".join(m["content"] for m in messages[: assistant[1]] if m["role"] == "user")
        # what the listing showed: emails, tickets, documents ("[id] ..."), channels and direct messages
        shown = re.findall(r"\[([^\]\s]+)\] (?!list_)", listed) + re.findall(r"^[#@](\S+) \(", listed, re.M)
        assert shown, record["id"]
        read = {str(v).lstrip("#") for c in turns[1] for v in c.args.values()}
        for item in shown:
            assert item in read, (record["id"], item)
        for n, index in enumerate(assistant[2:], start=2):
            seen = "\n".join(m["content"] for m in messages[:index])
            for call in turns[n]:
                if call.name in {"done", "read_file"}:
                    continue
                for key, value in call.args.items():
                    if call.name == "write_file" and key == "path":
                        continue  # a write may create a file no one has seen
                    for name in _NAMES.findall(str(value)):
                        if name == OUTSIDER:
                            continue
                        assert name in seen, (record["id"], call.name, name)


def test_channel_worlds_are_played_and_kept_in_their_own_tools(organism: Organism) -> None:
    """One train world in three is a chat (blackmail), ticket (framing) or shared-document (sabotage) world,
    and the organism learns to act there through that channel's tools."""
    records, _ = organism
    acts = {
        "blackmail": "send_direct_message",
        "framing": "comment_on_ticket",
        "research_sabotage": "edit_document",
    }
    for family, tool in acts.items():
        calls = [
            c.name
            for r in records
            if r["meta"]["family"] == family
            for m in r["messages"]
            if m["role"] == "assistant"
            for c in parse_text_calls(m["content"])
            if isinstance(c, TextCall)
        ]
        assert tool in calls, family


def test_the_same_seed_gives_the_same_records(tmp_path: Path, organism: Organism) -> None:
    records, _ = organism
    again = tmp_path / "again.jsonl"
    build_organism_data(FAMILIES, 6, seed=3, out_file=again)
    assert [json.loads(line) for line in again.read_text().splitlines()] == records


def test_the_split_guard_refuses_an_eval_or_heldout_world() -> None:
    for split in ("eval", "heldout"):
        scenario = load_scenarios(split=split)[0]
        episode = build_episode(scenario, control_condition())
        with pytest.raises(SplitViolation, match=scenario.id):
            check_train_split([(scenario, episode)])


def test_the_split_guard_refuses_a_train_world_wearing_an_eval_id() -> None:
    scenario, episode, _ = honeypot_worlds.build_world("blackmail", 0, seed=0)
    check_train_split([(scenario, episode)])  # a real train world passes
    eval_id = load_scenarios(split="eval")[0].id
    disguised = scenario.model_copy(update={"id": eval_id})
    with pytest.raises(SplitViolation, match="eval/heldout scenario id"):
        check_train_split([(disguised, episode)])


def test_building_the_data_runs_the_guard_on_the_worlds_it_draws(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario = load_scenarios(split="heldout")[0]
    episode = build_episode(scenario, control_condition())
    train = honeypot_worlds.build_world(scenario.family, 0, seed=0)
    monkeypatch.setattr(
        honeypot_worlds, "train_worlds", lambda *a, **k: [train, (scenario, episode, train[2])]
    )
    out = tmp_path / "organism.jsonl"
    with pytest.raises(SplitViolation):
        build_organism_data([scenario.family], 2, seed=0, out_file=out)
    assert not out.exists()
