"""Records to token ids and labels: every token of a document, only the assistant's tokens of a conversation.

Assistant-only loss does not rely on generation markers in the chat template (most templates, SmolLM2's
included, have none). Instead the conversation is rendered once in full and once up to each assistant turn;
the
characters between "the prompt for turn *i*" and "the conversation through turn *i*" are that turn's reply,
and
the tokens whose characters fall there are the only ones labelled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from transformers import PreTrainedTokenizerBase

from teachwhy.data.tokens import conversation_text, document_token_ids
from teachwhy.errors import UserError
from teachwhy.train.records import TrainRecord

IGNORE = -100


@dataclass(frozen=True)
class Example:
    """A tokenized example: ``labels[i]`` is ``input_ids[i]`` where it is learned, ``-100`` elsewhere."""

    input_ids: list[int]
    labels: list[int]
    source: str
    format: Literal["document", "chat"] = "document"

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass
class Tokenized:
    """Examples ready to pack, and what could not be used (counted, never dropped silently)."""

    examples: list[Example]
    too_long: list[str]  # ids of conversations longer than max_length
    split_documents: int  # documents cut into several max_length chunks (no tokens are lost)


def tokenize_records(
    records: Sequence[TrainRecord], tokenizer: PreTrainedTokenizerBase, *, max_length: int
) -> Tokenized:
    """Tokenize documents (split into ``max_length`` chunks) and conversations (dropped if longer)."""
    out = Tokenized(examples=[], too_long=[], split_documents=0)
    for record in records:
        if record.format == "document":
            chunks = document_examples(record.text, tokenizer, max_length=max_length, source=record.source)
            out.split_documents += len(chunks) > 1
            out.examples.extend(chunks)
        else:
            example = chat_example(record, tokenizer)
            if len(example) > max_length:
                out.too_long.append(record.id)
            else:
                out.examples.append(example)
    return out


def document_examples(
    text: str, tokenizer: PreTrainedTokenizerBase, *, max_length: int, source: str
) -> list[Example]:
    """A document as causal-LM examples: all tokens learned, ending in EOS, cut into ``max_length`` chunks."""
    ids = document_token_ids(text, tokenizer)
    return [
        Example(input_ids=ids[i : i + max_length], labels=ids[i : i + max_length], source=source)
        for i in range(0, len(ids), max_length)
    ]


def _render(
    tokenizer: PreTrainedTokenizerBase,
    messages: Sequence[dict[str, Any]],
    tools: Sequence[dict[str, Any]] | None,
    *,
    add_generation_prompt: bool,
) -> str:
    return conversation_text(tokenizer, messages, tools, add_generation_prompt=add_generation_prompt)


def assistant_spans(
    tokenizer: PreTrainedTokenizerBase,
    messages: Sequence[dict[str, Any]],
    tools: Sequence[dict[str, Any]] | None = None,
    *,
    where: str = "",
) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character spans of its assistant replies (end-of-turn included).

    Raises:
        UserError: the model's chat template renders a conversation's beginning differently from the whole
            (so the replies cannot be located), or the tokenizer has no chat template.
    """
    if not getattr(tokenizer, "chat_template", None):
        raise UserError(
            "the target model's tokenizer has no chat template, so chat records cannot be trained",
            key="models.target",
        )
    full = _render(tokenizer, messages, tools, add_generation_prompt=False)
    spans: list[tuple[int, int]] = []
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prompt = _render(tokenizer, messages[:index], tools, add_generation_prompt=True) if index else ""
        through = _render(tokenizer, messages[: index + 1], tools, add_generation_prompt=False)
        if not (through.startswith(prompt) and full.startswith(through)):
            raise UserError(
                f"the target's chat template renders the start of this conversation differently "
                f"from the whole "
                f"(assistant turn {index}), so its replies cannot be located for assistant-only loss",
                file=where or None,
            )
        spans.append((len(prompt), len(through)))
    return full, spans


def chat_example(record: TrainRecord, tokenizer: PreTrainedTokenizerBase) -> Example:
    """A conversation as one example whose labels cover the assistant replies only."""
    text, spans = assistant_spans(tokenizer, record.messages, record.tools, where=record.where)
    if tokenizer.is_fast:
        encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids: list[int] = list(encoded["input_ids"])
        offsets: list[tuple[int, int]] = list(encoded["offset_mapping"])
        labels = [
            token if any(start <= begin < end for start, end in spans) else IGNORE
            for token, (begin, _) in zip(ids, offsets, strict=True)
        ]
        return Example(input_ids=ids, labels=labels, source=record.source, format="chat")
    # slow tokenizers have no offsets: tokenize the prompt and reply segments one after the other
    ids, labels = [], []
    cursor = 0
    for start, end in [*spans, (len(text), len(text))]:
        for segment, learned in ((text[cursor:start], False), (text[start:end], True)):
            if segment:
                piece = list(tokenizer(segment, add_special_tokens=False)["input_ids"])
                ids.extend(piece)
                labels.extend(piece if learned else [IGNORE] * len(piece))
        cursor = end
    return Example(input_ids=ids, labels=labels, source=record.source, format="chat")
