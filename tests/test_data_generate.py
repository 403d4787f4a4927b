"""Generators on scripted models: records and provenance, resume, reproducibility, drops, judge."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from inspect_ai.model import GenerateConfig, ModelOutput

from teachwhy.config import DocumentsSource, RoleModel, StoriesSource
from teachwhy.constitution import Constitution, example_constitution_path, load_constitution
from teachwhy.data.documents import generate_documents
from teachwhy.data.quality import JudgeFilter, parse_judge_scores
from teachwhy.data.records import PROVENANCE_KEYS, validate_record
from teachwhy.data.stats import data_stats
from teachwhy.data.stories import generate_stories
from teachwhy.data.tokens import COUNT_METHOD, TokenCounter, counter_for_role, document_token_ids
from teachwhy.storage import read_jsonl
from test_data_support import IDEAS, generator_script, judge_model, prose, quiet_config, reply, scripted


@pytest.fixture(scope="module")
def constitution() -> Constitution:
    return load_constitution(example_constitution_path())


@pytest.fixture(scope="module")
def counter(embedded_model_dir: Path) -> TokenCounter:
    return counter_for_role(RoleModel())


def _judge(answer: str = "faithfulness: 8\nquality: 7", min_score: float = 6.0) -> JudgeFilter:
    return JudgeFilter(model=judge_model(answer), model_name="mockllm/judge", min_score=min_score)


def test_documents_pipeline_writes_records_with_provenance_and_tokens(
    tmp_path: Path, constitution: Constitution, counter: TokenCounter
) -> None:
    source = DocumentsSource(count=6, ideas_per_type=2, min_words=20)
    report = generate_documents(
        quiet_config(),
        source,
        constitution,
        tmp_path,
        model=scripted(generator_script()),
        judge=_judge(),
        counter=counter,
    )
    records = read_jsonl(tmp_path / "documents.jsonl")
    assert report.kept == len(records) == 6 and report.complete
    ideas = {r["id"] for r in read_jsonl(tmp_path / ".work" / "ideas.jsonl")}
    for line, record in enumerate(records, start=1):
        validate_record(record, file="documents.jsonl", line=line)
        prov = record["provenance"]
        assert set(prov) == set(PROVENANCE_KEYS)
        assert prov["constitution_sha256"] == constitution.sha256
        assert (
            prov["prompt_file"] == "teachwhy/prompts/documents_write.md" and len(prov["prompt_sha256"]) == 16
        )
        assert prov["generator_model"] == "mockllm/model"
        assert len(prov["parent_ids"]) == 1 and prov["parent_ids"][0] in ideas
        assert prov["filters"]["judge"] == {
            "passed": True,
            "score": 7.0,
            "reason": "faithfulness=8, quality=7 (mockllm/judge)",
        }
        assert prov["filters"]["dedup"]["passed"] is True
        assert record["tokens"] == {
            "tokenizer": counter.name,
            "count": len(document_token_ids(record["text"], counter.tokenizer)),  # what training sees
            "exact": True,
            "method": COUNT_METHOD,
        }
        assert record["meta"]["doc_type"] and record["meta"]["idea"]
    # three (principle, genre) pairs, two documents each: three distinct principles, two documents apiece
    assert sorted(report.coverage[p] for p in report.coverage if report.coverage[p]) == [2, 2, 2]
    assert len(report.uncovered) == len(constitution.principles) - 3
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["kept"] == 6 and summary["tokens"] == sum(r["tokens"]["count"] for r in records)


def test_records_load_with_hf_datasets(
    tmp_path: Path, constitution: Constitution, counter: TokenCounter
) -> None:
    from datasets import load_dataset

    source = StoriesSource(count=3, min_words=20, judge_filter=False)
    generate_stories(
        quiet_config(), source, constitution, tmp_path, model=scripted(generator_script()), counter=counter
    )
    dataset = load_dataset("json", data_files=str(tmp_path / "stories.jsonl"), split="train")
    assert dataset.num_rows == 3
    assert set(dataset.column_names) == {"id", "kind", "text", "meta", "provenance", "tokens"}
    assert dataset[0]["provenance"]["filters"]["judge"]["passed"] is None  # disabled, not "passed"


def test_failed_checks_truncation_and_judge_output_are_dropped_and_counted(
    tmp_path: Path, constitution: Constitution
) -> None:
    outputs = {
        0: reply(prose(0)),
        1: reply(prose(1), stop_reason="max_tokens"),
        2: reply("I'm sorry, but I can't write that story."),
        3: reply("Too short."),
        4: reply(""),
        5: reply(prose(5)),
    }
    order: list[int] = []

    def write(seed: int) -> object:
        order.append(seed)
        return outputs[len(order) - 1]

    answers = iter(["faithfulness: 9\nquality: 9", "I think it is pretty good!"])
    source = StoriesSource(count=6, min_words=20)
    config = quiet_config()
    config.generation.max_connections = 1  # scripted outputs in plan order
    report = generate_stories(
        config,
        source,
        constitution,
        tmp_path,
        model=scripted(generator_script(write=write)),
        judge=JudgeFilter(model=judge_model(lambda _: next(answers)), model_name="j", min_score=6),
    )
    assert report.kept == 1
    assert report.drops == {"empty": 1, "judge_unparseable": 1, "refusal": 1, "too_short": 1, "truncated": 1}
    drops = read_jsonl(tmp_path / "drops.jsonl")
    unparseable = next(d for d in drops if d["reason"] == "judge_unparseable")
    assert unparseable["provenance"]["filters"]["judge"]["passed"] is False
    assert unparseable["provenance"]["filters"]["judge"]["score"] is None


def test_judge_below_threshold_is_dropped_with_its_score(tmp_path: Path, constitution: Constitution) -> None:
    source = StoriesSource(count=2, min_words=20, min_score=7)
    report = generate_stories(
        quiet_config(),
        source,
        constitution,
        tmp_path,
        model=scripted(generator_script()),
        judge=_judge("faithfulness: 9\nquality: 5", min_score=7),
    )
    assert report.kept == 0 and report.drops == {"judge_below_threshold": 2}
    drop = read_jsonl(tmp_path / "drops.jsonl")[0]
    assert drop["provenance"]["filters"]["judge"]["score"] == 5.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("faithfulness: 8\nquality: 6", {"faithfulness": 8.0, "quality": 6.0}),
        ("**Faithfulness**: 7/10\n**Quality**: 9/10", {"faithfulness": 7.0, "quality": 9.0}),
        ("faithfulness: 8", None),  # a criterion missing
        ("faithfulness: 12\nquality: 5", None),  # out of range
        ("faithfulness: 3\nfaithfulness: 9\nquality: 5", None),  # contradictory
        ("Great work overall.", None),
    ],
)
def test_judge_score_parsing(text: str, expected: dict[str, float] | None) -> None:
    assert parse_judge_scores(text, ["faithfulness", "quality"], 10) == expected


class Killed(BaseException):
    """Stands for the process being killed mid-run (not an Exception, so nothing may swallow it)."""


def test_resume_after_kill_loses_and_duplicates_nothing(tmp_path: Path, constitution: Constitution) -> None:
    source = StoriesSource(count=8, min_words=20, judge_filter=False, dedup=False)
    config = quiet_config()
    config.generation.max_connections = 1
    calls: list[int] = []

    def dying(seed: int) -> object:
        calls.append(seed)
        if len(calls) == 4:
            raise Killed
        return reply(prose(seed))

    with pytest.raises(Killed):
        generate_stories(
            config, source, constitution, tmp_path, model=scripted(generator_script(write=dying))
        )
    finished = read_jsonl(tmp_path / ".work" / "write.jsonl")
    assert 3 <= len(finished) < 8
    # a kill can also leave a torn last line; the appender cuts it off
    with (tmp_path / ".work" / "write.jsonl").open("a") as f:
        f.write('{"id": "torn", "kind": "st')
    resumed_calls: list[int] = []

    def counting(seed: int) -> object:
        resumed_calls.append(seed)
        return reply(prose(seed))

    report = generate_stories(
        config, source, constitution, tmp_path, model=scripted(generator_script(write=counting))
    )
    records = read_jsonl(tmp_path / "stories.jsonl")
    assert len(resumed_calls) == 8 - len(finished)  # only the unfinished items were generated again
    assert report.kept == 8 and len({r["id"] for r in records}) == 8

    fresh = tmp_path / "fresh"
    generate_stories(config, source, constitution, fresh, model=scripted(generator_script()))
    assert (fresh / "stories.jsonl").read_bytes() == (tmp_path / "stories.jsonl").read_bytes()


def test_same_config_and_seed_reproduce_identical_files(tmp_path: Path, constitution: Constitution) -> None:
    source = DocumentsSource(count=4, min_words=20, judge_filter=False)
    for run in ("a", "b"):
        generate_documents(
            quiet_config(), source, constitution, tmp_path / run, model=scripted(generator_script())
        )
    assert (tmp_path / "a" / "documents.jsonl").read_bytes() == (
        tmp_path / "b" / "documents.jsonl"
    ).read_bytes()
    other = source.model_copy(update={"seed": 7})
    generate_documents(
        quiet_config(), other, constitution, tmp_path / "c", model=scripted(generator_script())
    )
    ids = {r["id"] for r in read_jsonl(tmp_path / "a" / "documents.jsonl")}
    assert ids.isdisjoint(r["id"] for r in read_jsonl(tmp_path / "c" / "documents.jsonl"))


def test_failed_model_calls_are_counted_and_retried_not_kept(
    tmp_path: Path, constitution: Constitution
) -> None:
    source = StoriesSource(count=3, min_words=20, judge_filter=False)
    config = quiet_config()
    config.generation.max_retries = 0
    failures = {"n": 0}

    def flaky(seed: int) -> object:
        failures["n"] += 1
        if failures["n"] == 2:
            raise RuntimeError("server went away")
        return reply(prose(seed))

    report = generate_stories(
        config, source, constitution, tmp_path, model=scripted(generator_script(write=flaky))
    )
    assert report.kept == 2 and report.unfinished == 1 and not report.complete
    assert report.model_errors == {"write:model_error:RuntimeError": 1}
    assert data_stats(tmp_path).model_errors == {"write:model_error:RuntimeError": 1}
    again = generate_stories(config, source, constitution, tmp_path, model=scripted(generator_script()))
    assert again.kept == 3 and again.complete


def test_idea_lists_in_the_wrong_format_are_dropped(tmp_path: Path, constitution: Constitution) -> None:
    def script(messages: list[object], tools: object, choice: object, config: object) -> object:
        return reply("Here are some thoughts without any list at all.")

    report = generate_documents(
        quiet_config(),
        DocumentsSource(count=2, judge_filter=False),
        constitution,
        tmp_path,
        model=scripted(script),
    )
    assert report.kept == 0 and report.drops == {"wrong_format": 1}


def test_long_constitution_prompts_carry_only_the_principles_chunk(tmp_path: Path) -> None:
    sections = "\n\n".join(
        f"## Section {s}\n\n" + "\n\n".join(f"### Rule {s}-{r}\n\n" + ("Reason text " * 60) for r in range(5))
        for s in range(20)
    )
    constitution = load_constitution_text(tmp_path, "# Long\n\n" + sections)
    seen: list[str] = []

    def script(messages: list[object], tools: object, choice: object, config: object) -> object:
        seen.append(messages[-1].text)  # type: ignore[attr-defined]
        return reply("1. A harbour pilot asks why the rule holds in a storm\n")

    source = DocumentsSource(count=2, ideas_per_type=1, judge_filter=False, context_words=200)
    generate_documents(quiet_config(), source, constitution, tmp_path / "out", model=scripted(script))
    idea_prompts = [s for s in seen if "Propose" in s]
    assert idea_prompts and all(
        len(p.split()) < 1200 for p in idea_prompts
    )  # the 100-principle file is ~6000 words


def load_constitution_text(tmp_path: Path, text: str) -> Constitution:
    path = tmp_path / "long.md"
    path.write_text(text)
    return load_constitution(path)


def test_chat_records_are_counted_through_the_chat_template(counter: TokenCounter) -> None:
    messages = [
        {"role": "user", "content": "Should I read my colleague's email?"},
        {"role": "assistant", "content": "No, and here is why it matters."},
    ]
    templated = counter.tokenizer.apply_chat_template(messages, tokenize=True)
    ids = templated["input_ids"] if hasattr(templated, "keys") else templated
    assert counter.count({"messages": messages}) == len(ids) > counter.count_text(messages[1]["content"])


def test_stale_drops_from_an_earlier_plan_are_not_reported(
    tmp_path: Path, constitution: Constitution
) -> None:
    config = quiet_config()
    empty = scripted(generator_script(write=lambda seed: reply("")))
    generate_stories(
        config, StoriesSource(count=2, judge_filter=False, seed=1), constitution, tmp_path, model=empty
    )
    report = generate_stories(
        config,
        StoriesSource(count=2, judge_filter=False, seed=2, min_words=20),
        constitution,
        tmp_path,
        model=scripted(generator_script()),
    )
    assert report.kept == 2 and report.drops == {}


def test_a_cut_off_idea_list_keeps_its_complete_items_and_discards_the_last(
    tmp_path: Path, constitution: Constitution
) -> None:
    def script(messages: list[Any], tools: object, choice: object, config: GenerateConfig) -> ModelOutput:
        if "Propose" in messages[-1].text:
            return reply(IDEAS + "4. A museum guide asks whether the", stop_reason="max_tokens")
        return reply(prose(int(config.seed or 0)))

    source = DocumentsSource(count=4, ideas_per_type=4, min_words=20, judge_filter=False)
    report = generate_documents(quiet_config(), source, constitution, tmp_path, model=scripted(script))
    records = read_jsonl(tmp_path / "documents.jsonl")
    assert [r["meta"]["idea"] for r in records] == [line[3:] for line in IDEAS.strip().splitlines()]
    assert report.stages["missing_ideas"] == {"slots": 1}  # four slots, three complete ideas


def test_truncated_output_is_trimmed_and_marked_only_when_asked(
    tmp_path: Path, constitution: Constitution
) -> None:
    words = [f"w{i}" + ("." if i % 8 == 7 else "") for i in range(96)]
    cut = reply(" ".join(words) + " and then the assistant sud", stop_reason="max_tokens")
    config = quiet_config()

    def run(mode: str, out: Path) -> Any:
        source = StoriesSource(count=1, min_words=20, judge_filter=False, truncated=mode)  # type: ignore[arg-type]
        model = scripted(generator_script(write=lambda seed: cut))
        return generate_stories(config, source, constitution, out, model=model)

    dropped = run("drop", tmp_path / "drop")
    assert dropped.kept == 0 and dropped.drops == {"truncated": 1}

    trimmed = run("trim", tmp_path / "trim")
    assert trimmed.kept == 1
    (record,) = read_jsonl(tmp_path / "trim" / "stories.jsonl")
    assert record["text"].endswith("w95.") and "sud" not in record["text"]
    assert record["provenance"]["filters"]["truncation"]["passed"] is True
    assert "max_tokens" in record["provenance"]["filters"]["truncation"]["reason"]


def test_trimming_never_keeps_an_output_without_a_full_sentence() -> None:
    from teachwhy.data.engine import trim_to_sentence

    assert trim_to_sentence("A whole first sentence that runs on for a while. A cut-off sec") == (
        "A whole first sentence that runs on for a while."
    )
    assert trim_to_sentence("no sentence ends anywhere in this cut off text") is None
    assert trim_to_sentence("Short. " + "x " * 200) is None  # would lose more than half
