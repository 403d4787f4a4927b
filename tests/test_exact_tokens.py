"""Token counts in records are exactly what training consumes, for documents and for conversations."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import AutoTokenizer

from teachwhy.data.tokens import TokenCounter
from teachwhy.train.records import TrainRecord
from teachwhy.train.tokenize import chat_example, document_examples

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup_order",
            "description": "Look up an order by its number.",
            "parameters": {"type": "object", "properties": {"number": {"type": "string"}}, "required": []},
        },
    }
]


@pytest.fixture(scope="module")
def counter(embedded_model_dir: Path) -> TokenCounter:
    return TokenCounter("embedded", True, AutoTokenizer.from_pretrained(embedded_model_dir))


@pytest.mark.parametrize(
    "text", ["One short sentence.", "A longer document.\n\nIt has two paragraphs, and some punctuation: yes!"]
)
def test_a_document_counts_the_special_tokens_training_adds(counter: TokenCounter, text: str) -> None:
    trained = sum(len(e) for e in document_examples(text, counter.tokenizer, max_length=4096, source="d"))
    record = {"id": "d", "kind": "document", "text": text}
    assert counter.count(record) == trained
    assert trained == counter.count_text(text) + 1  # SmolLM2 adds no BOS; training appends EOS


@pytest.mark.parametrize("tools", [None, TOOLS])
def test_a_conversation_counts_its_template_and_tools_as_training_renders_them(
    counter: TokenCounter, tools: list[dict[str, object]] | None
) -> None:
    messages = [
        {"role": "system", "content": "You help customers."},
        {"role": "user", "content": "Where is my order?"},
        {"role": "assistant", "content": "Let me check that for you."},
    ]
    record = {"id": "c", "kind": "advice", "messages": messages, **({"tools": tools} if tools else {})}
    as_tuple = tuple(tools) if tools else None
    train = TrainRecord(id="c", source="advice", format="chat", messages=tuple(messages), tools=as_tuple)
    assert counter.count(record) == len(chat_example(train, counter.tokenizer))
