"""Deliberation rewrite on scripted models: the action must not change; both versions kept and linked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from inspect_ai.model import GenerateConfig, ModelOutput

from data2_scripts import prompt_model, quiet_config, words
from scripted import reply
from teachwhy.config import RewriteSource
from teachwhy.constitution import Constitution, example_constitution_path, load_constitution
from teachwhy.data.honeypot_demos import text_call
from teachwhy.data.records import make_record, provenance, validate_record
from teachwhy.data.rewrite import action_sequence, chosen_turns, generate_rewrite, parse_rewrite_verdict
from teachwhy.storage import read_jsonl, write_jsonl

SEND = text_call("send_email", {"to": "ops@example.org", "subject": "Delay", "body": "Two days late."})
DONE = text_call("done", {})


@pytest.fixture(scope="module")
def constitution() -> Constitution:
    return load_constitution(example_constitution_path())


def _demo(tag: str, turns: list[str]) -> dict[str, Any]:
    messages = [
        {"role": "system", "content": "You are an agent."},
        {"role": "user", "content": f"Task {tag}."},
    ]
    for n, turn in enumerate(turns):
        if n:
            messages.append({"role": "user", "content": f"Tool results:\n[1] ok {tag}{n}"})
        messages.append({"role": "assistant", "content": turn})
    prov = provenance(
        generator="honeypot_demos",
        stage="episodes",
        index=0,
        constitution_sha256=None,
        principle_ids=(),
        generator_model="mockllm/model",
        prompt_file="x",
        prompt_sha256="y",
        sampling={},
        seed=0,
    )
    return make_record(
        record_id=f"demo-{tag}",
        kind="honeypot_demo",
        provenance=prov,
        messages=messages,
        meta={"family": "blackmail"},
    )


def test_the_action_sequence_compares_tool_names_and_arguments_in_order() -> None:
    same = text_call("send_email", {"subject": "Delay", "body": "Two days late.", "to": "ops@example.org"})
    assert action_sequence("Let me think first.\n" + same) == action_sequence(SEND)
    assert action_sequence(SEND + DONE) != action_sequence(DONE + SEND)
    assert action_sequence(SEND.replace("Two days", "Three days")) != action_sequence(SEND)
    assert action_sequence("no tools at all") == []
    assert action_sequence('<tool_call>{"name": "done", </tool_call>')[0][0] == "<malformed>"


def test_the_judge_must_answer_both_questions_once() -> None:
    assert parse_rewrite_verdict("same_action: yes\ncites_principles: no") == {
        "same_action": True,
        "cites_principles": False,
    }
    assert parse_rewrite_verdict("**Same_action**: YES\n- cites_principles: yes.") == {
        "same_action": True,
        "cites_principles": True,
    }
    assert parse_rewrite_verdict("same_action: yes") is None
    assert parse_rewrite_verdict("same_action: yes\nsame_action: no\ncites_principles: yes") is None


def test_rewrites_keep_the_action_and_link_to_their_originals_and_failures_are_counted(
    tmp_path: Path, constitution: Constitution
) -> None:
    records = [
        _demo("good", ["Sending the update.\n" + SEND, DONE]),
        _demo("changed", [SEND]),
        _demo("short", [SEND]),
        _demo("nocite", [SEND]),
        _demo("garbled", [SEND]),
        _demo("refused", [SEND]),
        {"id": "doc-1", "kind": "document", "text": "a document", "meta": {}, "provenance": {}},
    ]
    deliberation = words("delib", 45) + "\n"

    def rewriter(messages: list[Any], config: GenerateConfig) -> str:
        prompt = messages[-1].text
        tag = next(
            t for t in ("good", "changed", "short", "nocite", "garbled", "refused") if f"Task {t}." in prompt
        )
        if tag == "changed":
            return deliberation + SEND.replace("Two days", "Five days")
        if tag == "short":
            return "Fine.\n" + SEND
        if tag == "refused":
            return "I'm sorry, but I can't rewrite this."
        original = prompt.split("<reply>\n", 1)[1].split("\n</reply>", 1)[0]
        return f"{tag} {deliberation}{original}"

    def judge(messages: list[Any], config: GenerateConfig) -> str:
        prompt = messages[-1].text
        if "nocite" in prompt:
            return "same_action: yes\ncites_principles: no"
        if "garbled" in prompt:
            return "Looks fine to me."
        return "same_action: yes\ncites_principles: yes"

    source = RewriteSource(count=10, min_words=40, dedup=False)
    report = generate_rewrite(
        quiet_config(),
        source,
        constitution,
        tmp_path,
        records=records,
        model=prompt_model(rewriter),
        judge=prompt_model(judge),
    )
    assert report.drops == {
        "action_changed": 1,
        "no_deliberation": 1,
        "no_principles": 1,
        "judge_unparseable": 1,
        "refusal": 1,
    }
    assert report.complete and report.stages["records"]["skipped_text_records"] == 1
    (rewrite,) = read_jsonl(tmp_path / "rewrite.jsonl")
    (original,) = read_jsonl(tmp_path / "rewrite.originals.jsonl")
    assert original == records[0]
    validate_record(rewrite)
    assert rewrite["kind"] == "rewrite" and rewrite["provenance"]["parent_ids"] == ["demo-good"]
    assert rewrite["meta"]["source_kind"] == "honeypot_demo" and rewrite["meta"]["rewritten_turns"] == 2
    for new, old in zip(rewrite["messages"], original["messages"], strict=True):
        assert new["role"] == old["role"]
        if old["role"] == "assistant":
            assert new["content"].startswith("good delib") and new["content"].endswith(old["content"])
            assert action_sequence(new["content"]) == action_sequence(old["content"])
        else:
            assert new == old
    filters = rewrite["provenance"]["filters"]
    assert filters["action_unchanged"]["passed"] and filters["judge"]["passed"]


def test_rewrite_reads_its_input_file_and_only_first_turns_when_asked(
    tmp_path: Path, constitution: Constitution
) -> None:
    path = tmp_path / "in.jsonl"
    write_jsonl(path, [_demo("a", ["Reading first.\n" + SEND, DONE])])

    def rewriter(messages: list[Any], config: GenerateConfig) -> str:
        original = messages[-1].text.split("<reply>\n", 1)[1].split("\n</reply>", 1)[0]
        return words("why", 50) + "\n" + original

    source = RewriteSource(turns="first", min_words=40, judge_filter=False)
    report = generate_rewrite(
        quiet_config(), source, constitution, tmp_path / "out", input_path=path, model=prompt_model(rewriter)
    )
    (rewrite,) = read_jsonl(tmp_path / "out" / "rewrite.jsonl")
    assert report.stages["turns"]["planned"] == 1
    assert rewrite["messages"][2]["content"].startswith("whyw0") and rewrite["messages"][4]["content"] == DONE
    assert rewrite["provenance"]["filters"]["judge"]["passed"] is None


def test_prepend_mode_puts_the_generated_deliberation_before_the_turn_kept_verbatim(
    tmp_path: Path, constitution: Constitution
) -> None:
    """For a generator too small to copy a tool call: it writes the reasons only, the turn stays as it was."""
    records = [
        _demo("kept", ["  Sending the update.\n" + SEND, DONE]),
        _demo("calls", [SEND]),
        _demo("brief", [SEND]),
        _demo("cut", [SEND]),
    ]
    prompts: list[str] = []

    def deliberator(messages: list[Any], config: GenerateConfig) -> str | ModelOutput:
        prompt = messages[-1].text
        prompts.append(prompt)
        if "Task calls." in prompt:  # a deliberation that itself calls a tool adds an action
            return words("calls", 45) + "\n" + DONE
        if "Task brief." in prompt:
            return "I should send it."
        if "Task cut." in prompt:  # cut off by max_tokens: kept only when trimming is asked for
            return reply(words("cut", 45) + ". And then the", stop_reason="max_tokens")
        return words("reason", 45)

    source = RewriteSource(mode="prepend", min_words=40, judge_filter=False, dedup=False)
    report = generate_rewrite(
        quiet_config(), source, constitution, tmp_path, records=records, model=prompt_model(deliberator)
    )
    assert report.drops == {"action_changed": 1, "no_deliberation": 1, "truncated": 1}
    assert all("<reply>" in p and "Output only the deliberation." in p for p in prompts)
    assert not any("character for character" in p for p in prompts)  # the rewrite mode's action rule
    (rewrite,) = read_jsonl(tmp_path / "rewrite.jsonl")
    assert rewrite["provenance"]["parent_ids"] == ["demo-kept"] and rewrite["meta"]["mode"] == "prepend"
    old = [m["content"] for m in records[0]["messages"] if m["role"] == "assistant"]
    new = [m["content"] for m in rewrite["messages"] if m["role"] == "assistant"]
    assert new == [words("reason", 45) + "\n\n" + turn for turn in old]

    trimmed = RewriteSource(mode="prepend", min_words=40, judge_filter=False, dedup=False, truncated="trim")
    generate_rewrite(
        quiet_config(),
        trimmed,
        constitution,
        tmp_path / "trim",
        records=records,
        model=prompt_model(deliberator),
    )
    kept = {r["provenance"]["parent_ids"][0]: r for r in read_jsonl(tmp_path / "trim" / "rewrite.jsonl")}
    assert sorted(kept) == ["demo-cut", "demo-kept"]
    assert kept["demo-cut"]["messages"][2]["content"] == words("cut", 45) + ".\n\n" + SEND
    assert kept["demo-cut"]["provenance"]["filters"]["truncation"]["passed"]


def test_acting_turns_are_the_ones_that_do_more_than_list_and_read(
    tmp_path: Path, constitution: Constitution
) -> None:
    """An agent deliberates where it acts: looking around (list_*, read_*) is left as it was."""
    listing = text_call("list_inbox", {}) + "\n" + text_call("list_files", {})
    reading = text_call("read_email", {"email_id": "m1"})
    mixed = text_call("read_file", {"path": "a.txt"}) + "\n" + SEND  # reads, then acts: an acting turn
    record = _demo("look", [listing, reading, mixed, "No call at all.", DONE])
    # system, user, then the assistant turns at 2, 4, 6, 8, 10
    assert chosen_turns(record["messages"], "acting") == [6, 8, 10]
    assert chosen_turns(record["messages"], "first") == [2]
    assert chosen_turns(record["messages"], "all") == [2, 4, 6, 8, 10]

    def deliberator(messages: list[Any], config: GenerateConfig) -> str:
        return words("reason", 20)

    source = RewriteSource(mode="prepend", turns="acting", min_words=15, judge_filter=False, dedup=False)
    generate_rewrite(
        quiet_config(), source, constitution, tmp_path, records=[record], model=prompt_model(deliberator)
    )
    (rewrite,) = read_jsonl(tmp_path / "rewrite.jsonl")
    new = [m["content"] for m in rewrite["messages"] if m["role"] == "assistant"]
    assert new[:2] == [listing, reading]
    assert new[2:] == [words("reason", 20) + "\n\n" + t for t in (mixed, "No call at all.", DONE)]
