"""Dataset records: one JSON object per line, readable unchanged by HF ``datasets`` and TRL.

A record is ``{"id", "kind", "text" | "messages", "meta", "provenance", "tokens"}``:

- ``text`` (documents, stories) or ``messages`` (chat: ``[{"role", "content"}]``), never both;
- ``meta``: generator-specific attributes (document type, idea, story setting…), the same keys within a kind;
- ``provenance``: where the record came from (see :func:`provenance`), the same keys for every kind, so a file
  mixing kinds still loads with one schema;
- ``tokens``: ``{"tokenizer", "count", "exact", "method"}`` for the target model's tokenizer (see
  :mod:`teachwhy.data.tokens`).

Drops (items rejected by a check or a filter) are records of their own, kept in ``drops.jsonl`` with the
reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from teachwhy.errors import UserError

TEXT_KINDS = frozenset({"document", "story"})
"""Kinds whose content is ``text``; every other kind is chat (``messages``)."""

PROVENANCE_KEYS = (
    "generator",
    "stage",
    "index",
    "constitution_sha256",
    "principle_ids",
    "generator_model",
    "prompt_file",
    "prompt_sha256",
    "sampling",
    "seed",
    "parent_ids",
    "filters",
)


def sampling_dict(
    *, temperature: float | None, top_p: float | None, max_tokens: int | None
) -> dict[str, Any]:
    """The sampling parameters as stored in provenance (same keys and types everywhere)."""
    return {
        "temperature": None if temperature is None else float(temperature),
        "top_p": None if top_p is None else float(top_p),
        "max_tokens": max_tokens,
    }


def verdict(passed: bool | None, *, score: float | None = None, reason: str | None = None) -> dict[str, Any]:
    """One filter's verdict. ``passed`` is ``None`` when the filter did not run (e.g. disabled)."""
    return {"passed": passed, "score": None if score is None else float(score), "reason": reason}


def provenance(
    *,
    generator: str,
    stage: str,
    index: int,
    constitution_sha256: str | None,
    principle_ids: Sequence[str],
    generator_model: str,
    prompt_file: str,
    prompt_sha256: str,
    sampling: Mapping[str, Any],
    seed: int,
    parent_ids: Sequence[str] = (),
    filters: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Build a provenance block.

    Args:
        generator: the generator that produced the record (``documents``, ``stories``…).
        stage: the generator's stage (``ideas``, ``write``…).
        index: the item's position in the generator's plan (records are written in this order).
        constitution_sha256: hash of the constitution the record was generated from.
        principle_ids: the principles the record teaches.
        generator_model: the model string that wrote it.
        prompt_file: the prompt file used (package-relative for packaged prompts).
        prompt_sha256: that file's content hash.
        sampling: see :func:`sampling_dict`.
        seed: the seed sent with the request.
        parent_ids: ids of the records it was derived from.
        filters: each filter's verdict (see :func:`verdict`).
    """
    return {
        "generator": generator,
        "stage": stage,
        "index": index,
        "constitution_sha256": constitution_sha256,
        "principle_ids": list(principle_ids),
        "generator_model": generator_model,
        "prompt_file": prompt_file,
        "prompt_sha256": prompt_sha256,
        "sampling": dict(sampling),
        "seed": seed,
        "parent_ids": list(parent_ids),
        "filters": {name: dict(v) for name, v in (filters or {}).items()},
    }


def make_record(
    *,
    record_id: str,
    kind: str,
    provenance: dict[str, Any],
    text: str | None = None,
    messages: Sequence[Mapping[str, str]] | None = None,
    meta: Mapping[str, Any] | None = None,
    tokens: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Assemble a record; exactly one of ``text`` and ``messages`` must be given."""
    if (text is None) == (messages is None):
        raise ValueError("a record has exactly one of text and messages")
    record: dict[str, Any] = {"id": record_id, "kind": kind}
    if text is not None:
        record["text"] = text
    else:
        record["messages"] = [{"role": str(m["role"]), "content": str(m["content"])} for m in messages or ()]
    record["meta"] = dict(meta or {})
    record["provenance"] = provenance
    if tokens is not None:
        record["tokens"] = dict(tokens)
    return record


def record_content(record: Mapping[str, Any]) -> str:
    """The record's content as one string (chat turns joined), for dedup and judging."""
    if isinstance(record.get("text"), str):
        return str(record["text"])
    messages = record.get("messages") or []
    return "\n\n".join(f"{m.get('role', '')}: {m.get('content', '')}" for m in messages)


def validate_record(record: Mapping[str, Any], *, file: str | None = None, line: int | None = None) -> None:
    """Check a record has the shape every stage relies on.

    Raises:
        UserError: a required key is missing or has the wrong type (naming the file and line).
    """
    where = f"line {line}" if line is not None else None
    hint = " (a dataset from another tool? convert it with `teachwhy data import`)"

    def fail(message: str) -> None:
        raise UserError(message, file=file, key=where)

    if record.get("heldout"):  # e.g. the frozen constitution-adherence situations
        fail(f"a held-out {record['heldout']} evaluation item is never used to generate or train on")
    for key in ("id", "kind"):
        if not isinstance(record.get(key), str) or not record[key]:
            fail(f"record needs a non-empty string '{key}'" + hint)
    has_text = isinstance(record.get("text"), str)
    messages = record.get("messages")
    has_messages = isinstance(messages, list)
    if has_text == has_messages:
        fail("record needs exactly one of 'text' (a string) and 'messages' (a list)")
    if has_messages:
        for m in messages or []:
            if (
                not isinstance(m, dict)
                or not isinstance(m.get("role"), str)
                or not isinstance(m.get("content"), str)
            ):
                fail("each message needs string 'role' and 'content'")
    prov = record.get("provenance")
    if not isinstance(prov, dict):
        fail("record needs a 'provenance' object" + hint)
        return
    missing = [k for k in PROVENANCE_KEYS if k not in prov]
    if missing:
        fail(f"provenance lacks {', '.join(missing)}")
    tokens = record.get("tokens")
    if tokens is not None and (not isinstance(tokens, dict) or not isinstance(tokens.get("count"), int)):
        fail("'tokens' needs an integer 'count'")


def drop_record(
    *,
    item_id: str,
    kind: str,
    stage: str,
    reason: str,
    detail: str | None,
    output: str | None,
    provenance: dict[str, Any],
) -> dict[str, Any]:
    """A rejected item: what was generated, which check rejected it and why."""
    return {
        "id": item_id,
        "kind": kind,
        "stage": stage,
        "reason": reason,
        "detail": detail,
        "output": output,
        "provenance": provenance,
    }


def principle_ids_of(records: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """How many records teach each principle id."""
    counts: dict[str, int] = {}
    for record in records:
        for pid in (record.get("provenance") or {}).get("principle_ids") or []:
            counts[pid] = counts.get(pid, 0) + 1
    return counts
