"""`teachwhy data import`: every format and every bad-row reason; the records go through every later step."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from inspect_ai.model import GenerateConfig
from transformers import AutoTokenizer
from typer.testing import CliRunner

import pipeline_support
from data2_scripts import prompt_model, quiet_config
from teachwhy.cli import app
from teachwhy.config import AugmentSource, RewriteSource, TrainConfig, TrainStage
from teachwhy.constitution import Constitution, example_constitution_path, load_constitution
from teachwhy.data.augment import generate_augment
from teachwhy.data.import_rows import DROP_REASONS, open_source
from teachwhy.data.importing import import_dataset
from teachwhy.data.records import record_content, validate_record
from teachwhy.data.rewrite import generate_rewrite
from teachwhy.data.tokens import TokenCounter
from teachwhy.errors import UserError
from teachwhy.storage import read_jsonl
from teachwhy.train import train_model
from teachwhy.train.records import parse_record

CHAT = [
    {"role": "user", "content": "May I skip the review?"},
    {"role": "assistant", "content": "No: say why."},
]
GOOD_ROWS: list[Any] = [
    {"id": 7, "messages": CHAT},
    {
        "conversations": [
            {"from": "system", "value": ""},
            {"from": "human", "value": "Why?"},
            {"from": "gpt", "value": "Because."},
        ]
    },
    {"prompt": "Should I hide it?", "response": "No, tell them.", "system": "Be direct."},
    {"prompt": [CHAT[0]], "completion": [CHAT[1]]},
    {"text": "A short document about honest reporting."},
    {
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}]},
            {"role": "assistant", "content": "Hello."},
        ]
    },
]
BAD_ROWS: dict[str, Any] = {
    "not_an_object": [1, 2],
    "no_known_columns": {"question": "x", "answer": "y"},
    "malformed": {"messages": [{"content": "no role"}]},
    "unknown_role": {"conversations": [{"from": "narrator", "value": "x"}, {"from": "gpt", "value": "y"}]},
    "non_text_content": {
        "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": "x"}]}, CHAT[1]]
    },
    "no_assistant_turn": {"messages": [CHAT[0], {"role": "assistant", "content": "  "}]},
    "empty_text": {"text": ""},
    "chat_template_error": {"messages": [CHAT[1], CHAT[0], CHAT[1]]},
}


@pytest.fixture(scope="module")
def strict_counter(embedded_model_dir: Path) -> TokenCounter:
    """The embedded tokenizer with a chat template that, like many, refuses a conversation the model opens."""
    tokenizer = AutoTokenizer.from_pretrained(embedded_model_dir)
    tokenizer.chat_template = (
        "{% if messages[0]['role'] == 'assistant' %}"
        "{{ raise_exception('must start with the user') }}{% endif %}"
        "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    )
    return TokenCounter("strict", True, tokenizer)


@pytest.fixture(scope="module")
def constitution() -> Constitution:
    return load_constitution(example_constitution_path())


def write_jsonl_rows(path: Path, rows: list[Any], *, broken_line: bool = False) -> Path:
    lines = [json.dumps(r) for r in rows] + (["{not json"] if broken_line else [])
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def imported(tmp_path: Path, strict_counter: TokenCounter) -> Path:
    src = write_jsonl_rows(tmp_path / "chats.jsonl", GOOD_ROWS + list(BAD_ROWS.values()), broken_line=True)
    import_dataset(open_source(src), tmp_path / "imp", counter=strict_counter)
    return tmp_path / "imp" / "imported.jsonl"


def test_each_format_becomes_a_record_with_imported_provenance_and_each_bad_row_is_dropped_with_its_reason(
    tmp_path: Path, strict_counter: TokenCounter
) -> None:
    src = write_jsonl_rows(tmp_path / "chats.jsonl", GOOD_ROWS + list(BAD_ROWS.values()), broken_line=True)
    report = import_dataset(open_source(src), tmp_path / "out", counter=strict_counter)

    assert report.requested == len(GOOD_ROWS) + len(BAD_ROWS) + 1 and report.kept == len(GOOD_ROWS)
    assert report.drops == dict.fromkeys(sorted(DROP_REASONS), 1)
    assert report.stages["formats"] == {"messages": 2, "sharegpt": 1, "prompt_response": 2, "text": 1}
    records = read_jsonl(tmp_path / "out" / "imported.jsonl")
    sha = hashlib.sha256(src.read_bytes()).hexdigest()
    for row, record in enumerate(records):
        validate_record(record)
        parse_record(record, file="imported.jsonl", line=row + 1)  # what training checks
        assert record["kind"] == "imported" and record["tokens"]["tokenizer"] == "strict"
        assert record["provenance"]["imported"] == {
            "file": str(src),
            "sha256": sha,
            "row": row,
            "format": record["provenance"]["imported"]["format"],
        }
    assert records[0]["messages"] == CHAT and records[0]["meta"] == {"source_id": "7"}
    assert records[1]["messages"] == [
        {"role": "user", "content": "Why?"},
        {"role": "assistant", "content": "Because."},
    ]
    assert records[2]["messages"][0] == {"role": "system", "content": "Be direct."}
    assert records[3]["messages"] == CHAT and records[4]["text"].startswith("A short document")
    assert records[5]["messages"][0]["content"] == "Hi there"

    drops = {d["reason"]: d for d in read_jsonl(tmp_path / "out" / "drops.jsonl")}
    assert drops["invalid_json"]["provenance"]["imported"]["row"] == len(GOOD_ROWS) + len(BAD_ROWS)
    assert (
        "narrator" in drops["unknown_role"]["detail"]
        and "must start" in drops["chat_template_error"]["detail"]
    )
    assert json.loads(drops["empty_text"]["output"]) == {"text": ""}
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["source"] == {"file": str(src), "type": "jsonl", "sha256": sha, "split": None}
    assert summary["drops"] == report.drops


def test_a_forced_format_reads_only_its_columns(tmp_path: Path, strict_counter: TokenCounter) -> None:
    src = write_jsonl_rows(tmp_path / "mixed.jsonl", [{"text": "doc", "messages": CHAT}, {"messages": CHAT}])
    report = import_dataset(open_source(src), tmp_path / "out", format="text", counter=strict_counter)
    assert report.kept == 1 and report.drops == {"no_known_columns": 1}
    (record,) = read_jsonl(tmp_path / "out" / "imported.jsonl")
    assert record["text"] == "doc" and record["provenance"]["imported"]["format"] == "text"


def test_parquet_and_a_saved_dataset_folder_are_read_with_their_row_numbers(
    tmp_path: Path, strict_counter: TokenCounter
) -> None:
    from datasets import Dataset, DatasetDict

    rows = [
        {"text": None, "messages": CHAT},
        {"text": "a document", "messages": None},
        {"text": None, "messages": None},
    ]
    Dataset.from_list(rows).to_parquet(str(tmp_path / "rows.parquet"))
    report = import_dataset(open_source(tmp_path / "rows.parquet"), tmp_path / "pq", counter=strict_counter)
    assert (report.kept, report.drops) == (2, {"no_known_columns": 1})
    assert [r["provenance"]["imported"]["row"] for r in read_jsonl(tmp_path / "pq" / "imported.jsonl")] == [
        0,
        1,
    ]

    sharegpt = [
        {"conversations": [{"from": "human", "value": f"q{i}"}, {"from": "gpt", "value": f"a{i}"}]}
        for i in range(3)
    ]
    DatasetDict({"train": Dataset.from_list(sharegpt), "test": Dataset.from_list(sharegpt[:1])}).save_to_disk(
        str(tmp_path / "saved")
    )
    with pytest.raises(UserError, match="holds several splits; choose one of test, train"):
        import_dataset(open_source(tmp_path / "saved"), tmp_path / "hf")
    report = import_dataset(
        open_source(tmp_path / "saved", split="train"), tmp_path / "hf", counter=strict_counter
    )
    assert report.kept == 3 and report.stages["formats"] == {"sharegpt": 3}
    (first, *_) = read_jsonl(tmp_path / "hf" / "imported.jsonl")
    assert first["provenance"]["imported"]["file"] == str(tmp_path / "saved")
    assert first["messages"][1] == {"role": "assistant", "content": "a0"}


def test_sources_that_cannot_be_read_are_one_line_user_errors(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "folder").mkdir()
    with pytest.raises(UserError, match="unknown file type"):
        open_source(tmp_path / "notes.txt")
    with pytest.raises(UserError, match="save_to_disk"):
        open_source(tmp_path / "folder")
    with pytest.raises(UserError, match="not found"):
        open_source(tmp_path / "missing.jsonl")
    (tmp_path / "rows.jsonl").write_text("{}\n")
    with pytest.raises(UserError, match="has no splits"):
        open_source(tmp_path / "rows.jsonl", split="train")


def test_the_cli_imports_prints_counts_and_drop_reasons(tmp_path: Path) -> None:
    src = write_jsonl_rows(tmp_path / "chats.jsonl", [GOOD_ROWS[0], BAD_ROWS["empty_text"]])
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        [
            "data",
            "import",
            str(src),
            "-o",
            str(out),
            "--kind",
            "demos",
            "--config",
            str(tmp_path / "none.yaml"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "1/2 rows imported (messages 1)" in result.output and "empty_text 1" in result.output
    assert read_jsonl(out / "imported.jsonl")[0]["kind"] == "demos"


def test_imported_records_are_rewritten_augmented_deduplicated_and_mixed(
    tmp_path: Path, strict_counter: TokenCounter, constitution: Constitution
) -> None:
    path = imported(tmp_path, strict_counter)
    chats = [r for r in read_jsonl(path) if "messages" in r]

    augmented = generate_augment(
        quiet_config(), AugmentSource(seed=1), constitution, tmp_path / "aug", input_path=path
    )
    assert augmented.kept == len(chats) and augmented.drops == {"not_chat": 1}
    first = read_jsonl(tmp_path / "aug" / "augment.jsonl")[0]
    assert first["provenance"]["imported"]["file"].endswith("chats.jsonl")  # the source stays traceable

    def rewriter(messages: list[Any], config: GenerateConfig) -> str:
        original = messages[-1].text.split("<reply>\n", 1)[1].split("\n</reply>", 1)[0]
        return pipeline_support.scripted_text(original, words=30) + "\n" + original

    rewritten = generate_rewrite(
        quiet_config(),
        RewriteSource(min_words=20, judge_filter=False),
        constitution,
        tmp_path / "rw",
        input_path=path,
        model=prompt_model(rewriter),
    )
    assert rewritten.kept == len(chats) and rewritten.complete
    assert read_jsonl(tmp_path / "rw" / "rewrite.jsonl")[0]["provenance"]["parent_ids"] == [chats[0]["id"]]

    doubled = tmp_path / "doubled.jsonl"
    doubled.write_text(path.read_text() + path.read_text().splitlines(keepends=True)[0])
    runner = CliRunner()
    result = runner.invoke(app, ["data", "dedup", str(doubled), "-o", str(tmp_path / "dedup.jsonl")])
    assert result.exit_code == 0, result.output
    distinct = {record_content(r) for r in read_jsonl(path)}  # rows 0 and 3 hold the same conversation
    assert len(read_jsonl(tmp_path / "dedup.jsonl")) == len(distinct) == len(GOOD_ROWS) - 1
    result = runner.invoke(
        app, ["data", "mix", "-s", f"mine={path}:1", "--budget", "60", "-o", str(tmp_path / "mix.jsonl")]
    )
    assert result.exit_code == 0, result.output
    mixed = read_jsonl(tmp_path / "mix.jsonl")
    assert mixed and {r["mix"]["source"] for r in mixed} == {"mine"}


def test_imported_records_train_a_tiny_model(
    tmp_path: Path, strict_counter: TokenCounter, embedded_model_dir: Path
) -> None:
    path = imported(tmp_path, strict_counter)
    model = pipeline_support.build_tiny_target(tmp_path / "tiny", embedded_model_dir, max_positions=256)
    config = TrainConfig(
        stages=[TrainStage(name="sft", kind="mixed", max_steps=2)],
        batch_size=2,
        max_length=128,
        save_steps=2,
        lora={"r": 4, "alpha": 8, "dropout": 0.0},
    )
    result = train_model(model=model, data=[path], out_dir=tmp_path / "run", config=config, progress=False)
    assert result.steps == 2 and [c.step for c in result.checkpoints] == [2]
    assert set(result.tokens_by_source) == {"imported"} and result.tokens_by_source["imported"] > 0


def test_a_plain_chat_file_given_to_a_transform_points_to_data_import(
    tmp_path: Path, constitution: Constitution
) -> None:
    plain = write_jsonl_rows(tmp_path / "plain.jsonl", [{"messages": CHAT}])
    with pytest.raises(UserError, match="teachwhy data import"):
        generate_augment(quiet_config(), AugmentSource(), constitution, tmp_path / "aug", input_path=plain)


def test_a_json_array_file_and_a_line_that_is_not_utf8(tmp_path: Path, strict_counter: TokenCounter) -> None:
    array = tmp_path / "rows.json"
    array.write_text(json.dumps([GOOD_ROWS[0], GOOD_ROWS[4]]))
    assert import_dataset(open_source(array), tmp_path / "a", counter=strict_counter).kept == 2
    lines = tmp_path / "rows.jsonl"
    lines.write_bytes(json.dumps(GOOD_ROWS[0]).encode() + b"\n\xff\xfe broken\n")
    report = import_dataset(open_source(lines), tmp_path / "b", counter=strict_counter)
    assert (report.kept, report.drops) == (1, {"invalid_json": 1})
    assert "not UTF-8" in read_jsonl(tmp_path / "b" / "drops.jsonl")[0]["detail"]


def test_import_never_writes_over_another_generators_folder(tmp_path: Path) -> None:
    src = write_jsonl_rows(tmp_path / "chats.jsonl", [GOOD_ROWS[0]])
    (tmp_path / "advice").mkdir()
    (tmp_path / "advice" / "summary.json").write_text(json.dumps({"generator": "advice"}))
    with pytest.raises(UserError, match="import into a folder of its own"):
        import_dataset(open_source(src), tmp_path / "advice")
    assert not (tmp_path / "advice" / "imported.jsonl").exists()
    import_dataset(open_source(src), tmp_path / "imp")
    assert import_dataset(open_source(src), tmp_path / "imp").kept == 1  # importing again replaces its own


def test_dedup_drops_repeated_rows_keeping_the_first(tmp_path: Path) -> None:
    src = write_jsonl_rows(tmp_path / "chats.jsonl", [GOOD_ROWS[0], GOOD_ROWS[4], GOOD_ROWS[0]])
    result = CliRunner().invoke(
        app,
        ["data", "import", str(src), "-o", str(tmp_path / "out"), "--dedup", "-c", str(tmp_path / "x.yaml")],
    )
    assert result.exit_code == 0, result.output
    assert "duplicate_exact 1" in result.output
    kept = read_jsonl(tmp_path / "out" / "imported.jsonl")
    assert [r["provenance"]["imported"]["row"] for r in kept] == [0, 1]
    assert kept[0]["provenance"]["filters"]["dedup"]["passed"] is True
    (drop,) = read_jsonl(tmp_path / "out" / "drops.jsonl")
    assert drop["reason"] == "duplicate_exact" and drop["detail"].startswith("row 2 duplicates row 0")
