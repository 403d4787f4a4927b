"""Training records read from JSONL: documents (``text``) and chat conversations (``messages``).

The data stage writes one record per line with ``id``, ``kind`` (the source that produced it: ``documents``,
``advice``…), ``provenance`` and ``tokens``, plus either ``text`` or ``messages``. Training needs only the
id, the
source and the content, so only those are checked here; anything wrong is reported with the file and line.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from teachwhy.errors import UserError

CHAT_ROLES = frozenset({"system", "user", "assistant", "tool"})


@dataclass(frozen=True)
class TrainRecord:
    """One training example.

    Attributes:
        id: the record's stable id.
        source: the record's ``kind`` (the data source it came from); tokens are counted per source.
        format: ``document`` (causal-LM on all tokens) or ``chat`` (loss on assistant turns only).
        text: the document text (documents only).
        messages: the conversation (chat only).
        tools: tool definitions to render with the conversation, if the record carries any.
        where: ``file:line`` of the record, for error messages.
    """

    id: str
    source: str
    format: Literal["document", "chat"]
    text: str = ""
    messages: tuple[dict[str, Any], ...] = ()
    tools: tuple[dict[str, Any], ...] | None = None
    where: str = field(default="", compare=False)


def load_records(paths: Sequence[str | Path]) -> list[TrainRecord]:
    """Read and validate every record of the given JSONL files, in order.

    Raises:
        UserError: a file is missing or empty, a line is not a JSON object, or a record lacks what training
        needs.
    """
    if not paths:
        raise UserError("no training data given (pass one or more JSONL files)", key="--data")
    records: list[TrainRecord] = []
    for path in paths:
        before = len(records)
        records.extend(_read_file(Path(path)))
        if len(records) == before:
            raise UserError("the file has no records", file=path)
    return records


def _read_file(path: Path) -> Iterable[TrainRecord]:
    if not path.is_file():
        raise UserError("training data file not found", file=path)
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(f"not valid JSON ({e.msg})", file=path, key=f"line {number}") from None
            yield parse_record(raw, file=path, line=number)


def parse_record(raw: Any, *, file: str | Path, line: int) -> TrainRecord:
    """Validate one decoded JSONL record.

    Raises:
        UserError: naming ``file`` and ``line`` and the field at fault.
    """

    def fail(message: str, field_name: str | None = None) -> UserError:
        key = f"line {line}" + (f" {field_name}" if field_name else "")
        return UserError(message, file=file, key=key)

    if not isinstance(raw, dict):
        raise fail("each line must be a JSON object")
    if raw.get("heldout"):
        raise fail(f"a held-out {raw['heldout']} evaluation item is never training data", "heldout")
    record_id = raw.get("id")
    if not isinstance(record_id, str | int) or isinstance(record_id, bool) or str(record_id) == "":
        raise fail("missing or empty id", "id")
    source = raw.get("kind")
    if not isinstance(source, str) or not source.strip():
        raise fail("missing kind (the data source of the record)", "kind")
    has_text, has_messages = "text" in raw, "messages" in raw
    if has_text == has_messages:
        raise fail("a record needs exactly one of 'text' (a document) or 'messages' (a conversation)")
    where = f"{file}:{line}"
    if has_text:
        text = raw["text"]
        if not isinstance(text, str) or not text.strip():
            raise fail("text must be a non-empty string", "text")
        return TrainRecord(id=str(record_id), source=source, format="document", text=text, where=where)
    messages = raw["messages"]
    if not isinstance(messages, list) or not messages:
        raise fail("messages must be a non-empty list", "messages")
    for index, message in enumerate(messages):
        key = f"messages[{index}]"
        if not isinstance(message, dict):
            raise fail("each message must be an object with role and content", key)
        if message.get("role") not in CHAT_ROLES:
            raise fail(f"role must be one of {', '.join(sorted(CHAT_ROLES))}", f"{key}.role")
        if not isinstance(message.get("content"), str):
            raise fail("content must be a string", f"{key}.content")
    if not any(m["role"] == "assistant" and m["content"].strip() for m in messages):
        raise fail("a conversation needs at least one non-empty assistant message to learn from", "messages")
    tools = raw.get("tools")
    if tools is not None and (not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools)):
        raise fail("tools must be a list of objects", "tools")
    return TrainRecord(
        id=str(record_id),
        source=source,
        format="chat",
        messages=tuple(messages),
        tools=tuple(tools) if tools else None,
        where=where,
    )
