"""The parsed constitution: principles with stable ids, grouped by section."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

from teachwhy.errors import UserError


@dataclass(frozen=True)
class Principle:
    """One principle of a constitution.

    Attributes:
        id: stable id, ``section-slug/title-slug`` (e.g. ``honesty/no-deception``) or the explicit ``{#id}``.
        section: the section heading text; nested sections are joined with ``" > "``.
        title: a short title.
        text: the full text of the principle (behaviour and reason), without the title marker.
    """

    id: str
    section: str
    title: str
    text: str

    @property
    def word_count(self) -> int:
        """Words in the title and text together: the measure :meth:`Constitution.chunks` budgets by."""
        return len(self.title.split()) + len(self.text.split())


@dataclass(frozen=True)
class Constitution:
    """A constitution (model spec) parsed into principles.

    Attributes:
        path: the file it was read from, if any.
        title: the document title.
        principles: every principle, in document order.
        sha256: hex SHA-256 of the raw file bytes (of the UTF-8 text when parsed from a string), for
            provenance.
    """

    path: Path | None
    title: str
    principles: tuple[Principle, ...]
    sha256: str

    def get(self, principle_id: str) -> Principle:
        """Return the principle with this id.

        Args:
            principle_id: a principle id, e.g. ``honesty/no-deception``.

        Returns:
            The principle.

        Raises:
            UserError: no principle has this id (the message suggests close matches).
        """
        for principle in self.principles:
            if principle.id == principle_id:
                return principle
        ids = [p.id for p in self.principles]
        close = difflib.get_close_matches(principle_id, ids, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known ids: {', '.join(ids[:10])}"
        raise UserError(f"unknown principle id '{principle_id}'{hint}", file=self.path, key="principles")

    def sections(self) -> list[str]:
        """Return the section names, each once, in document order."""
        return list(self.by_section())

    def by_section(self) -> dict[str, list[Principle]]:
        """Return the principles grouped by section, sections in document order."""
        groups: dict[str, list[Principle]] = {}
        for principle in self.principles:
            groups.setdefault(principle.section, []).append(principle)
        return groups

    def chunks(self, max_words: int) -> list[list[Principle]]:
        """Split the principles into consecutive chunks of at most ``max_words`` words each.

        Used to process a long constitution piece by piece without ever truncating it. Whole sections are
        kept together when they fit: a section that does not fit in the current chunk starts a new one, and
        only a section longer than ``max_words`` on its own is split between principles. A single principle
        longer than ``max_words`` is a chunk by itself. Words are counted by :attr:`Principle.word_count`.

        Args:
            max_words: the word budget of one chunk (at least 1).

        Returns:
            The chunks, in document order; together they hold every principle exactly once.

        Raises:
            ValueError: ``max_words`` is less than 1.
        """
        if max_words < 1:
            raise ValueError(f"max_words must be at least 1, got {max_words}")
        runs: list[list[Principle]] = []
        for principle in self.principles:
            if runs and runs[-1][0].section == principle.section:
                runs[-1].append(principle)
            else:
                runs.append([principle])
        chunks: list[list[Principle]] = []
        current: list[Principle] = []
        used = 0
        for run in runs:
            run_words = sum(p.word_count for p in run)
            if run_words <= max_words:
                if used + run_words > max_words and current:
                    chunks.append(current)
                    current, used = [], 0
                current.extend(run)
                used += run_words
                continue
            if current:  # a section too long for one chunk starts its own and is split between principles
                chunks.append(current)
                current, used = [], 0
            for principle in run:
                if used + principle.word_count > max_words and current:
                    chunks.append(current)
                    current, used = [], 0
                current.append(principle)
                used += principle.word_count
        if current:
            chunks.append(current)
        return chunks
