"""Difficult advice on scripted models: records, reasoning format, critique-and-revise, drops by reason."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from inspect_ai.model import GenerateConfig, ModelOutput

from data2_scripts import prompt_model, quiet_config, words
from scripted import reply
from teachwhy.config import AdviceSource
from teachwhy.constitution import Constitution, example_constitution_path, load_constitution
from teachwhy.data.advice import generate_advice, parse_reply, split_sections
from teachwhy.data.quality import JudgeFilter
from teachwhy.data.records import PROVENANCE_KEYS, validate_record
from teachwhy.storage import read_jsonl

JUDGE_OK = "faithfulness: 8\nhelpfulness: 7\nquality: 9"


@pytest.fixture(scope="module")
def constitution() -> Constitution:
    return load_constitution(example_constitution_path())


def _judge(respond: Any = JUDGE_OK) -> JudgeFilter:
    model = prompt_model(lambda m, c: respond(m[-1].text) if callable(respond) else respond)
    return JudgeFilter(model=model, model_name="mockllm/judge", min_score=6.0)


def _generator(*, answer: Any = None, revise: Any = None) -> Any:
    """Dilemmas are numbered case0, case1… in call order; later stages see the number in their prompt."""
    numbers = itertools.count()

    def respond(messages: list[Any], config: GenerateConfig) -> ModelOutput | str:
        text = messages[-1].text
        if "Write the message a person sends" in text:
            n = next(numbers)
            return f"case{n} " + words(f"d{n}", 40) + " What should I do?"
        case = next(w for w in text.split() if w.startswith("case"))
        if "First critique the draft" in text:
            if revise is not None and (out := revise(case)) is not None:
                return out
            return (
                "CRITIQUE:\nThe draft is fine but vague.\nREVISED:\n"
                f"REASONING:\n{words(case + 'r', 30)}\nANSWER:\n{words(case + 'a', 60)}"
            )
        if answer is not None and (out := answer(case)) is not None:
            return out
        return f"REASONING:\n{words(case + 'x', 30)}\nANSWER:\n{words(case + 'y', 60)}"

    return prompt_model(respond)


def test_advice_records_are_chat_records_with_reasoning_revision_and_provenance(
    tmp_path: Path, constitution: Constitution
) -> None:
    source = AdviceSource(count=4, reasoning=True, revise=True, min_words=20)
    report = generate_advice(
        quiet_config(), source, constitution, tmp_path, model=_generator(), judge=_judge()
    )
    records = read_jsonl(tmp_path / "advice.jsonl")
    assert report.kept == len(records) == 4 and report.complete and report.drops == {}
    dilemmas = {r["id"]: r for r in read_jsonl(tmp_path / ".work" / "dilemma.jsonl")}
    drafts = {r["id"]: r for r in read_jsonl(tmp_path / ".work" / "answer.jsonl")}
    for line, record in enumerate(records, start=1):
        validate_record(record, file="advice.jsonl", line=line)
        assert record["kind"] == "advice" and set(record["provenance"]) == set(PROVENANCE_KEYS)
        user, assistant = record["messages"]
        assert user["role"] == "user" and user["content"].startswith("case")
        assert assistant["role"] == "assistant"
        assert assistant["content"].startswith("<reasoning>\n") and "</reasoning>\n\n" in assistant["content"]
        # the revised answer replaced the draft
        case = user["content"].split()[0]
        assert f"{case}aw0" in assistant["content"] and f"{case}yw0" not in assistant["content"]
        assert record["meta"]["critique"] == "The draft is fine but vague."
        assert set(record["meta"]) == {"domain", "pressure", "stakes", "reasoning", "revised", "critique"}
        # revise -> answer draft -> dilemma
        draft = drafts[record["provenance"]["parent_ids"][0]]
        assert dilemmas[draft["provenance"]["parent_ids"][0]]["text"] == user["content"]
        assert record["provenance"]["prompt_file"] == "teachwhy/prompts/advice/revise.md"
        assert record["provenance"]["filters"]["judge"]["score"] == 7.0
    # four items, four distinct principles, in a balanced deal
    assert sorted(n for n in report.coverage.values() if n) == [1, 1, 1, 1]
    assert set(report.stages) == {"dilemma", "answer", "revise"}


def test_without_reasoning_or_revision_the_answer_is_the_plain_reply(
    tmp_path: Path, constitution: Constitution
) -> None:
    def plain(case: str) -> str:
        return words(case + "p", 60)

    source = AdviceSource(count=2, reasoning=False, revise=False, min_words=20)
    generate_advice(
        quiet_config(), source, constitution, tmp_path, model=_generator(answer=plain), judge=_judge()
    )
    records = read_jsonl(tmp_path / "advice.jsonl")
    assert len(records) == 2
    for record in records:
        case = record["messages"][0]["content"].split()[0]
        assert record["messages"][1]["content"] == plain(case)
        assert record["meta"]["critique"] is None and record["provenance"]["prompt_file"].endswith(
            "answer.md"
        )
    assert not (tmp_path / ".work" / "revise.jsonl").exists()


def test_refusals_truncation_bad_format_and_judge_failures_are_dropped_and_counted(
    tmp_path: Path, constitution: Constitution
) -> None:
    def answer(case: str) -> ModelOutput | str | None:
        if case == "case0":
            return "I'm sorry, but I can't help with that request."
        if case == "case1":
            return reply(f"REASONING:\n{words('t', 30)}\nANSWER:\n{words('u', 10)}", stop_reason="max_tokens")
        if case == "case2":
            return words("noformat", 80)  # the reasoning headings are missing
        return None

    def revise(case: str) -> str | None:
        return words("nocritique", 80) if case == "case3" else None

    def judge(prompt: str) -> str:
        if "case4" in prompt:
            return "This exchange is lovely."
        if "case5" in prompt:
            return "faithfulness: 2\nhelpfulness: 9\nquality: 9"
        return JUDGE_OK

    source = AdviceSource(count=7, reasoning=True, revise=True, min_words=20)
    report = generate_advice(
        quiet_config(),
        source,
        constitution,
        tmp_path,
        model=_generator(answer=answer, revise=revise),
        judge=_judge(judge),
    )
    assert report.drops == {
        "refusal": 1,
        "truncated": 1,
        "wrong_format": 2,
        "judge_unparseable": 1,
        "judge_below_threshold": 1,
    }
    kept = read_jsonl(tmp_path / "advice.jsonl")
    assert [r["messages"][0]["content"].split()[0] for r in kept] == ["case6"]
    drops = read_jsonl(tmp_path / "drops.jsonl")
    assert {d["stage"] for d in drops} == {"answer", "revise"}
    assert report.complete


def test_a_failed_model_call_leaves_the_item_unfinished_for_the_next_run(
    tmp_path: Path, constitution: Constitution
) -> None:
    def broken(messages: list[Any], config: GenerateConfig) -> str:
        raise ConnectionError("server went away")

    source = AdviceSource(count=2, revise=False, min_words=20, judge_filter=False)
    config = quiet_config()
    config.generation.max_retries = 0
    first = generate_advice(config, source, constitution, tmp_path, model=prompt_model(broken))
    assert first.kept == 0 and not first.complete and first.unfinished == 2 and first.drops == {}
    second = generate_advice(
        config, source, constitution, tmp_path, model=_generator(answer=lambda c: words(c, 50))
    )
    assert second.kept == 2 and second.complete


def test_sections_must_all_appear_once_and_in_order() -> None:
    text = "**Reasoning:** weigh it\n\n## ANSWER: do the honest thing"
    assert split_sections(text, ("REASONING", "ANSWER")) == {
        "REASONING": "weigh it",
        "ANSWER": "do the honest thing",
    }
    assert split_sections("ANSWER: a\nREASONING: b", ("REASONING", "ANSWER")) is None
    assert split_sections("REASONING: a\nANSWER:", ("REASONING", "ANSWER")) is None
    assert parse_reply("just advice", reasoning=False) == (None, "just advice")
    assert parse_reply("just advice", reasoning=True) is None
