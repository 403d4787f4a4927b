"""Reading a dataset you already have, row by row, into the two shapes records have (text or messages).

The source is a JSONL file (``.jsonl``; ``.json`` may also hold one JSON array), a Parquet file
(``.parquet``) or a folder written by ``datasets``' ``save_to_disk``. Each row is recognised by its columns,
in this order (a forced format checks only its own):

- ``messages``: ``[{"role", "content"}]`` (OpenAI / TRL conversational; text-only content parts are joined);
- ``sharegpt``: ``conversations`` as ``[{"from", "value"}]`` with ``human``/``gpt``/``system`` speakers;
- ``prompt_response``: ``prompt`` and ``response`` (or ``completion``) strings, with an optional ``system``
  column, or TRL's conversational ``prompt``/``completion`` message lists;
- ``text``: a document.

A row that cannot be read raises :class:`RowProblem` with one of :data:`DROP_REASONS`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from teachwhy.errors import UserError

FORMATS = ("messages", "sharegpt", "prompt_response", "text")
DROP_REASONS = {
    "invalid_json": "a JSONL line that is not JSON",
    "not_an_object": "a row that is not an object with columns",
    "no_known_columns": "none of messages, conversations, prompt/response or text (or not the forced format)",
    "malformed": "a known column with the wrong shape (not a list of messages, a message without role…)",
    "unknown_role": "a speaker that is not system, user, assistant or tool (ShareGPT: human, gpt)",
    "non_text_content": "a message part that is not text (an image, a structured tool call)",
    "no_assistant_turn": "a conversation without a non-empty assistant message (nothing to learn from)",
    "empty_text": "a text row whose text is empty",
    "chat_template_error": "the target tokenizer's chat template rejects the conversation",
}
_ROLES = {
    "system": "system",
    "user": "user",
    "assistant": "assistant",
    "tool": "tool",
    "human": "user",
    "gpt": "assistant",
    "model": "assistant",
}


class RowProblem(Exception):
    """Why a row cannot become a record (``reason`` is one of :data:`DROP_REASONS`)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class ImportSource:
    """The dataset being imported: where it is, what it is, and a hash of its bytes."""

    path: Path
    label: str
    type: str
    sha256: str
    split: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.label, "type": self.type, "sha256": self.sha256, "split": self.split}


def source_sha256(path: Path) -> str:
    """The sha256 of a file, or of a folder's files (relative names and contents, in name order)."""
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode("utf-8") + b"\x00")
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def open_source(path: Path, *, label: str | None = None, split: str | None = None) -> ImportSource:
    """Identify the source's type (``jsonl``, ``parquet``, ``hf_dataset``).

    Raises:
        UserError: it does not exist, or is neither a known file type nor a saved dataset folder.
    """
    if not path.exists():
        raise UserError("not found", file=path)
    if path.is_dir():
        if not any((path / marker).exists() for marker in ("state.json", "dataset_dict.json")):
            raise UserError(
                "not a dataset folder saved with datasets' save_to_disk (no state.json or dataset_dict.json)",
                file=path,
            )
        kind = "hf_dataset"
    elif path.suffix in (".jsonl", ".json"):
        kind = "jsonl"
    elif path.suffix == ".parquet":
        kind = "parquet"
    else:
        raise UserError("unknown file type (expected .jsonl, .json, .parquet or a dataset folder)", file=path)
    if split is not None and not (path / "dataset_dict.json").exists():
        raise UserError("has no splits (only a saved DatasetDict has)", file=path, key="--split")
    return ImportSource(path, label or str(path), kind, source_sha256(path), split)


def read_rows(source: ImportSource) -> Iterator[tuple[int, Any]]:
    """``(row index, row)`` for every row; an unreadable JSONL line comes as a :class:`RowProblem`."""
    if source.type == "jsonl":
        yield from _jsonl_rows(source.path)
    elif source.type == "parquet":
        import pyarrow.parquet as pq

        try:
            parquet = pq.ParquetFile(source.path)
        except Exception as e:  # pyarrow raises several types for a file that is not Parquet
            raise UserError(f"not a readable Parquet file ({type(e).__name__})", file=source.path) from None
        index = 0
        for batch in parquet.iter_batches(batch_size=1024):
            for row in batch.to_pylist():
                yield index, row
                index += 1
    else:
        yield from enumerate(_saved_dataset(source))


def _jsonl_rows(path: Path) -> Iterator[tuple[int, Any]]:
    with path.open("rb") as handle:
        head = handle.read(4096).lstrip()
        handle.seek(0)
        if path.suffix == ".json" and head.startswith(b"["):  # one array of rows
            try:
                rows = json.loads(handle.read().decode("utf-8"))
            except UnicodeDecodeError:
                raise UserError("not UTF-8 text", file=path) from None
            except json.JSONDecodeError as e:
                raise UserError(f"not valid JSON ({e.msg})", file=path, key=f"line {e.lineno}") from None
            yield from enumerate(rows)
            return
        for index, raw in enumerate(handle):
            if not raw.strip():
                continue
            try:
                yield index, json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError:
                yield index, RowProblem("invalid_json", f"line {index + 1}: not UTF-8 text")
            except json.JSONDecodeError as e:
                yield index, RowProblem("invalid_json", f"line {index + 1}: {e.msg}")


def _saved_dataset(source: ImportSource) -> Any:
    from datasets import DatasetDict, load_from_disk

    loaded = load_from_disk(str(source.path))
    if not isinstance(loaded, DatasetDict):
        return loaded
    splits = sorted(loaded)
    if source.split is None and len(splits) == 1:
        return loaded[splits[0]]
    if source.split is None or source.split not in loaded:
        problem = "holds several splits" if source.split is None else f"has no split '{source.split}'"
        raise UserError(f"{problem}; choose one of {', '.join(splits)}", file=source.path, key="--split")
    return loaded[source.split]


# --- one row -----------------------------------------------------------------------------------------


def _present(row: Mapping[str, Any], column: str) -> bool:
    return row.get(column) is not None  # columnar sources fill absent columns with null


def detect_format(row: Mapping[str, Any]) -> str | None:
    """The first format whose columns the row has (see the module docstring), or ``None``."""
    if _present(row, "messages"):
        return "messages"
    if _present(row, "conversations"):
        return "sharegpt"
    if _present(row, "prompt") and (_present(row, "response") or _present(row, "completion")):
        return "prompt_response"
    if _present(row, "text"):
        return "text"
    return None


def _text(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}, ...]
        parts = []
        for part in content:
            if not isinstance(part, dict):
                raise RowProblem("malformed", f"{where}: a content part is not an object")
            if part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise RowProblem("non_text_content", f"{where}: a '{part.get('type')}' content part")
            parts.append(part["text"])
        return "".join(parts)
    if content is None:
        raise RowProblem("non_text_content", f"{where}: no text content (a structured tool call?)")
    raise RowProblem("malformed", f"{where}: content is a {type(content).__name__}, not text")


def _messages(value: Any, column: str, role_key: str, content_key: str) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise RowProblem("malformed", f"'{column}' is not a non-empty list of messages")
    messages = []
    for i, message in enumerate(value):
        where = f"{column}[{i}]"
        if not isinstance(message, dict) or not isinstance(message.get(role_key), str):
            raise RowProblem("malformed", f"{where} is not an object with a string '{role_key}'")
        speaker = message[role_key]
        role = _ROLES.get(speaker.strip().lower())
        if role is None:
            raise RowProblem("unknown_role", f"{where}: '{speaker}'")
        content = _text(message.get(content_key), where)
        if role == "system" and not content.strip():
            continue  # an empty system prompt says nothing
        messages.append({"role": role, "content": content})
    return messages


def _exchange(row: Mapping[str, Any]) -> list[dict[str, str]]:
    answer_column = "response" if _present(row, "response") else "completion"
    prompt, answer = row["prompt"], row[answer_column]
    if isinstance(prompt, list) and isinstance(answer, list):  # TRL conversational prompt-completion
        return _messages(prompt, "prompt", "role", "content") + _messages(
            answer, answer_column, "role", "content"
        )
    if not isinstance(prompt, str) or not isinstance(answer, str):
        raise RowProblem("malformed", f"'prompt' and '{answer_column}' must both be strings or message lists")
    system = row.get("system")
    if system is not None and not isinstance(system, str):
        raise RowProblem("malformed", "'system' is not a string")
    head = [{"role": "system", "content": system}] if system and system.strip() else []
    return [*head, {"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]


def convert_row(row: Any, *, format: str = "auto") -> tuple[str, dict[str, Any]]:
    """The row's format and content (``{"messages": …}`` or ``{"text": …}``).

    Raises:
        RowProblem: the row cannot be read (its reason and a detail naming the column).
    """
    if not isinstance(row, dict):
        raise RowProblem("not_an_object", f"a {type(row).__name__}")
    detected = detect_format(row) if format == "auto" else detect_format(_only(row, format))
    if detected is None:
        columns = ", ".join(sorted(str(k) for k in row)) or "none"
        raise RowProblem("no_known_columns", f"columns: {columns}")
    if detected == "text":
        text = row["text"]
        if not isinstance(text, str):
            raise RowProblem("malformed", f"'text' is a {type(text).__name__}, not a string")
        if not text.strip():
            raise RowProblem("empty_text", "'text' is empty")
        return detected, {"text": text}
    if detected == "messages":
        messages = _messages(row["messages"], "messages", "role", "content")
    elif detected == "sharegpt":
        messages = _messages(row["conversations"], "conversations", "from", "value")
    else:
        messages = _exchange(row)
    if not any(m["role"] == "assistant" and m["content"].strip() for m in messages):
        raise RowProblem("no_assistant_turn", "no non-empty assistant message")
    return detected, {"messages": messages}


def _only(row: Mapping[str, Any], format: str) -> dict[str, Any]:
    """The row with only the forced format's columns kept (the others nulled), to check it has them."""
    keep = {
        "messages": ("messages",),
        "sharegpt": ("conversations",),
        "prompt_response": ("prompt", "response", "completion"),
        "text": ("text",),
    }[format]
    return {k: (v if k in keep else None) for k, v in row.items()}
