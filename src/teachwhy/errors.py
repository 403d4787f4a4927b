"""Errors a user can cause, reported by the CLI as one line and exit code 2."""

from __future__ import annotations

from pathlib import Path


class UserError(Exception):
    """Bad input from the user: a config, constitution, dataset or model output we cannot use.

    The CLI prints ``str(error)`` on one line and exits with code 2. Build it with the file and the
    key inside that file, so the message tells the user exactly where to look.

    Args:
        message: what is wrong, in the user's words.
        file: the file the bad input came from, if any.
        key: the location inside the file (``arms[1].data.advice.count``, ``line 12``), if any.
    """

    def __init__(self, message: str, *, file: str | Path | None = None, key: str | None = None) -> None:
        self.message = message
        self.file = str(file) if file is not None else None
        self.key = key
        super().__init__(self.format())

    def format(self) -> str:
        parts = [p for p in (self.file, self.key) if p]
        text = " ".join(self.message.split())  # always one line
        return ": ".join([*parts, text])
