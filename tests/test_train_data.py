"""Training data preparation: record validation, assistant-only labels, packing without cross-document
leakage."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerBase

from teachwhy.errors import UserError
from teachwhy.train.packing import RowCollator, concat_examples, pack_examples
from teachwhy.train.records import TrainRecord, load_records
from teachwhy.train.tokenize import IGNORE, Example, chat_example, tokenize_records


@pytest.fixture(scope="module")
def tokenizer(embedded_model_dir: Path) -> PreTrainedTokenizerBase:
    return AutoTokenizer.from_pretrained(embedded_model_dir)


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# --- records -------------------------------------------------------------------------------------------


def test_records_are_documents_or_chat_by_their_fields(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "mix.jsonl",
        [
            json.dumps({"id": "d1", "kind": "documents", "text": "An essay.", "provenance": {}, "tokens": 3}),
            "",
            json.dumps(
                {
                    "id": 7,
                    "kind": "advice",
                    "messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}],
                }
            ),
        ],
    )
    records = load_records([path])
    assert [(r.id, r.source, r.format) for r in records] == [
        ("d1", "documents", "document"),
        ("7", "advice", "chat"),
    ]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("{not json", "line 2: not valid JSON"),
        (json.dumps({"id": "x", "text": "t"}), "line 2 kind: missing kind"),
        (
            json.dumps({"id": "x", "kind": "k", "text": "t", "messages": []}),
            "line 2: a record needs exactly one",
        ),
        (json.dumps({"id": "x", "kind": "k", "text": "  "}), "line 2 text: text must be a non-empty string"),
        (
            json.dumps({"id": "x", "kind": "k", "messages": [{"role": "user", "content": "hi"}]}),
            "line 2 messages: a conversation needs at least one non-empty assistant message",
        ),
        (
            json.dumps({"id": "x", "kind": "k", "messages": [{"role": "robot", "content": "hi"}]}),
            "line 2 messages[0].role: role must be one of",
        ),
        (json.dumps({"kind": "k", "text": "t"}), "line 2 id: missing or empty id"),
    ],
)
def test_bad_records_name_file_and_line(tmp_path: Path, line: str, expected: str) -> None:
    path = _write(tmp_path / "bad.jsonl", [json.dumps({"id": "ok", "kind": "k", "text": "fine"}), line])
    with pytest.raises(UserError) as caught:
        load_records([path])
    assert str(caught.value).startswith(f"{path}: {expected}")


def test_missing_and_empty_files_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not found"):
        load_records([tmp_path / "absent.jsonl"])
    with pytest.raises(UserError, match="no records"):
        load_records([_write(tmp_path / "empty.jsonl", [""])])


# --- tokenization ----------------------------------------------------------------------------------------


def test_chat_labels_cover_only_assistant_replies(tokenizer: PreTrainedTokenizerBase) -> None:
    messages = (
        {"role": "system", "content": "You give careful advice."},
        {"role": "user", "content": "My manager asked me to backdate a report. Should I?"},
        {"role": "assistant", "content": "No. Backdating misleads the people who rely on the date."},
        {"role": "user", "content": "What if nobody checks?"},
        {"role": "assistant", "content": "Honesty does not depend on being watched."},
    )
    record = TrainRecord(id="c", source="advice", format="chat", messages=messages)
    example = chat_example(record, tokenizer)

    learned = [t for t, label in zip(example.input_ids, example.labels, strict=True) if label != IGNORE]
    assert all(
        label in (IGNORE, token) for token, label in zip(example.input_ids, example.labels, strict=True)
    )
    assert tokenizer.decode(learned) == (
        "No. Backdating misleads the people who rely on the date.<|im_end|>\n"
        "Honesty does not depend on being watched.<|im_end|>\n"
    )
    prompt = tokenizer.decode(
        [t for t, label in zip(example.input_ids, example.labels, strict=True) if label == IGNORE]
    )
    assert "backdate a report" in prompt and "nobody checks" in prompt and "careful advice" in prompt
    assert "Backdating" not in prompt


def test_long_documents_are_split_and_long_conversations_dropped(tokenizer: PreTrainedTokenizerBase) -> None:
    long_text = " ".join(f"word{i}" for i in range(200))
    records = [
        TrainRecord(id="doc", source="documents", format="document", text=long_text),
        TrainRecord(
            id="chat",
            source="advice",
            format="chat",
            messages=({"role": "user", "content": long_text}, {"role": "assistant", "content": "ok"}),
        ),
    ]
    out = tokenize_records(records, tokenizer, max_length=64)
    assert out.too_long == ["chat"]
    assert out.split_documents == 1
    chunks = out.examples
    assert len(chunks) > 1 and all(len(c) <= 64 for c in chunks)
    joined = [t for c in chunks for t in c.input_ids]
    assert joined[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(joined[:-1]) == long_text


# --- packing -------------------------------------------------------------------------------------------


def _examples(lengths: list[int]) -> list[Example]:
    return [
        Example(input_ids=[1000 + i] * n, labels=[1000 + i] * n, source=f"s{i % 2}")
        for i, n in enumerate(lengths)
    ]


def test_packing_keeps_every_example_whole_and_fills_rows() -> None:
    rng = random.Random(3)
    lengths = [rng.randint(3, 60) for _ in range(200)]
    rows = pack_examples(_examples(lengths), max_length=64, seed=0)
    assert all(len(row) <= 64 for row in rows)
    # every example appears exactly once, contiguous, with positions restarting at 0 and its first token
    # unlabelled
    seen = []
    for row in rows:
        starts = [i for i, p in enumerate(row.position_ids) if p == 0]
        for begin, end in zip(starts, [*starts[1:], len(row)], strict=True):
            segment = row.input_ids[begin:end]
            assert len(set(segment)) == 1
            assert row.labels[begin] == IGNORE and row.labels[begin + 1 : end] == segment[1:]
            assert row.position_ids[begin:end] == list(range(end - begin))
            seen.append((segment[0], len(segment)))
    assert sorted(seen) == sorted((1000 + i, n) for i, n in enumerate(lengths))
    total = sum(lengths)
    # no packing can do better than the token total or than one row per example over half a row
    lower_bound = max(-(-total // 64), sum(n > 32 for n in lengths))
    assert len(rows) <= lower_bound + 2
    assert sum(sum(r.source_tokens.values()) for r in rows) == total


def test_packing_is_deterministic_for_a_seed() -> None:
    examples = _examples([5, 9, 30, 12, 12, 40, 7])
    assert pack_examples(examples, max_length=48, seed=1) == pack_examples(examples, max_length=48, seed=1)


def test_collator_pads_as_a_separate_unlabelled_sequence() -> None:
    rows = [concat_examples(_examples([3, 2])), concat_examples(_examples([4]))]
    batch = RowCollator(pad_token_id=0)(
        [
            {
                "input_ids": r.input_ids,
                "labels": r.labels,
                "position_ids": r.position_ids,
                "source_tokens": [1, 2],
            }
            for r in rows
        ]
    )
    assert batch["input_ids"].shape == (2, 5)
    assert batch["position_ids"].tolist() == [[0, 1, 2, 0, 1], [0, 1, 2, 3, 0]]
    assert batch["labels"][1].tolist() == [IGNORE, 1000, 1000, 1000, IGNORE]
    assert batch["source_tokens"].sum(dim=0).tolist() == [2, 4]


def test_packed_documents_do_not_attend_to_each_other(tokenizer: PreTrainedTokenizerBase) -> None:
    torch.manual_seed(0)
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=256,
        )
    ).eval()
    ids_a = tokenizer("Trust is built slowly and lost quickly.")["input_ids"]
    ids_b = tokenizer("Oversight lets mistakes be caught.")["input_ids"]
    doc_a, doc_b = Example(ids_a, ids_a, "a"), Example(ids_b, ids_b, "b")
    collate = RowCollator(pad_token_id=int(tokenizer.pad_token_id))

    def features(*examples: Example) -> list[dict[str, object]]:
        row = concat_examples(examples)
        return [
            {
                "input_ids": row.input_ids,
                "labels": row.labels,
                "position_ids": row.position_ids,
                "source_tokens": [0],
            }
        ]

    # as in training (TRL passes use_cache=False): no KV cache, so the position resets define the sequences
    with torch.no_grad():
        packed = collate(features(doc_a, doc_b))
        alone = collate(features(doc_b))
        packed_logits = model(
            input_ids=packed["input_ids"], position_ids=packed["position_ids"], use_cache=False
        ).logits
        alone_logits = model(
            input_ids=alone["input_ids"], position_ids=alone["position_ids"], use_cache=False
        ).logits
        # the control: the same tokens as one sequence (positions not reset) do see document A
        joined = torch.arange(packed["input_ids"].shape[1]).unsqueeze(0)
        leaky_logits = model(input_ids=packed["input_ids"], position_ids=joined, use_cache=False).logits
    b_in_pack = packed_logits[0, len(doc_a) :]
    torch.testing.assert_close(b_in_pack, alone_logits[0], atol=1e-5, rtol=1e-5)
    assert (leaky_logits[0, len(doc_a) :] - alone_logits[0]).abs().max() > 1e-3
