"""Balanced plans: which principle, genre, setting… each generated item gets.

Principles are dealt round-robin from an order shuffled by the seed, so every principle gets ``count // P`` or
one more items before any gets two more; pools (genres, settings, pressures) are dealt the same way. The
context shown next to a principle is its chunk of the constitution (:meth:`Constitution.chunks`), so a long
constitution is processed piece by piece and no prompt carries the whole document.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TypeVar

from teachwhy.constitution import Constitution, Principle
from teachwhy.storage import content_hash

T = TypeVar("T")


def deal(pool: Sequence[T], count: int, *, seed: int, salt: str) -> list[T]:
    """``count`` items from ``pool`` round-robin in a seeded shuffled order (each used evenly)."""
    if not pool:
        raise ValueError("cannot deal from an empty pool")
    order = list(pool)
    random.Random(f"{seed}:{salt}").shuffle(order)
    return [order[i % len(order)] for i in range(count)]


def balanced_principles(constitution: Constitution, count: int, *, seed: int) -> list[Principle]:
    """``count`` principles covering the constitution as evenly as possible."""
    return deal(constitution.principles, count, seed=seed, salt="principles")


def principle_context(constitution: Constitution, principle: Principle, *, max_words: int) -> list[Principle]:
    """The other principles in the principle's chunk of at most ``max_words`` words: its neighbourhood."""
    for chunk in constitution.chunks(max_words):
        if principle in chunk:
            return [p for p in chunk if p.id != principle.id]
    return []


def format_context(principles: Sequence[Principle]) -> str:
    """Principles as a short bulleted list for a prompt (``(none)`` when empty)."""
    if not principles:
        return "(none)"
    return "\n".join(f"- {p.title}: {' '.join(p.text.split())}" for p in principles)


def item_seed(base_seed: int, *parts: object) -> int:
    """A per-item seed derived from the run's seed and the item's identity (fits a signed 32-bit int)."""
    return int(content_hash(base_seed, *parts), 16) % (2**31 - 1)
