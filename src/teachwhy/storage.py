"""Durable files: atomic writes, append-only JSONL that survives a kill, content hashes.

Every stage writes through these helpers so that a run killed at any point leaves either the old file or
the new one, never half of one, and a resumed generation neither loses nor duplicates records.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from teachwhy.errors import UserError


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the new one, never a partial one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | Path, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically."""
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False) + "\n")


def read_results_json(path: str | Path, file_name: str) -> tuple[Any, Path]:
    """(the parsed JSON, its path) of a results file given as the file or the folder holding ``file_name``.

    Raises:
        UserError: the file is missing or is not valid JSON (naming the line).
    """
    path = Path(path)
    if path.is_dir():
        path = path / file_name
    try:
        return json.loads(path.read_text(encoding="utf-8")), path
    except FileNotFoundError:
        raise UserError("results file not found", file=path) from None
    except json.JSONDecodeError as e:
        raise UserError(f"not valid JSON ({e.msg})", file=path, key=f"line {e.lineno}") from None


def write_jsonl(path: str | Path, records: Iterable[dict[str, Any]]) -> int:
    """Write all ``records`` to ``path`` atomically; returns the number written."""
    lines = [json.dumps(r, ensure_ascii=False) for r in records]
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return len(lines)


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Read every record of a JSONL file; a malformed line is a user error naming the file and line."""
    return list(iter_jsonl(path))


def iter_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    path = Path(path)
    if not path.exists():
        raise UserError("file not found", file=path)
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(f"not valid JSON ({e.msg})", file=path, key=f"line {number}") from None
            if not isinstance(record, dict):
                raise UserError("each line must be a JSON object", file=path, key=f"line {number}")
            yield record


class JsonlAppender:
    """Append-only JSONL for item-by-item generation that resumes after a kill.

    On open, a trailing line left incomplete by a kill is cut off, and the ids already present are
    loaded, so the caller can skip finished items. Each appended record is flushed and fsynced before
    ``append`` returns, so a finished item is never lost.
    """

    def __init__(self, path: str | Path, *, id_key: str = "id") -> None:
        self.path = Path(path)
        self.id_key = id_key
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.ids: set[str] = set()
        self._repair_and_load()
        self._file = self.path.open("a", encoding="utf-8")

    def _repair_and_load(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        keep = data if data.endswith(b"\n") or not data else data[: data.rfind(b"\n") + 1]
        if keep != data:
            with self.path.open("r+b") as f:
                f.truncate(len(keep))
        for line in keep.decode("utf-8").splitlines():
            if line.strip():
                record = json.loads(line)
                self.ids.add(str(record[self.id_key]))

    def __contains__(self, record_id: str) -> bool:
        return record_id in self.ids

    def append(self, record: dict[str, Any]) -> None:
        record_id = str(record[self.id_key])
        if record_id in self.ids:
            return
        self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        self.ids.add(record_id)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def content_hash(*parts: Any, length: int = 16) -> str:
    """A stable short hash of JSON-serialisable parts (dict keys sorted), for ids and cache keys."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, bytes):
            h.update(part)
        else:
            h.update(json.dumps(part, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()[:length]


def file_hash(path: str | Path, length: int = 16) -> str:
    """The sha256 of a file's bytes, shortened."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:length]
