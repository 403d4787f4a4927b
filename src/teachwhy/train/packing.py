"""Packing examples into rows of ``max_length`` tokens without letting one document see another.

Each example keeps its own ``position_ids`` (restarting at 0), and no attention mask is passed:
transformers then
reads the position resets as sequence boundaries and builds a block-diagonal causal mask (sdpa, eager) or uses
variable-length kernels (flash attention). The first token of every example is never a label, so the last
token
of one document is never trained to predict the first token of the next. Padding at the end of a row is one
more
sequence of its own, with no labels.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from datasets import Dataset

from teachwhy.train.tokenize import IGNORE, Example


@dataclass(frozen=True)
class Row:
    """One training row: several whole examples back to back."""

    input_ids: list[int]
    labels: list[int]
    position_ids: list[int]
    source_tokens: dict[str, int]

    def __len__(self) -> int:
        return len(self.input_ids)


def concat_examples(examples: Sequence[Example]) -> Row:
    """Put examples into one row, resetting positions and unlabelling each example's first token."""
    ids: list[int] = []
    labels: list[int] = []
    positions: list[int] = []
    sources: dict[str, int] = {}
    for example in examples:
        ids.extend(example.input_ids)
        labels.append(IGNORE)
        labels.extend(example.labels[1:])
        positions.extend(range(len(example)))
        sources[example.source] = sources.get(example.source, 0) + len(example)
    return Row(input_ids=ids, labels=labels, position_ids=positions, source_tokens=sources)


def pack_examples(examples: Sequence[Example], *, max_length: int, seed: int = 0) -> list[Row]:
    """Best-fit-decreasing packing: each example goes into the fullest row it still fits in.

    Examples are shuffled with ``seed`` first so that equally long examples from different sources mix; the
    result is deterministic for a given input and seed. No example is split or dropped.

    Raises:
        ValueError: an example is longer than ``max_length`` (tokenization should have cut or dropped it).
    """
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    order.sort(key=lambda i: -len(examples[i]))  # stable: ties keep the shuffled order
    bins: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (space left, bin index), sorted
    for i in order:
        size = len(examples[i])
        if size > max_length:
            raise ValueError(f"example of {size} tokens does not fit max_length {max_length}")
        at = bisect.bisect_left(free, (size, -1))
        if at < len(free):
            space, index = free.pop(at)
        else:
            space, index = max_length, len(bins)
            bins.append([])
        bins[index].append(i)
        if space - size > 0:
            bisect.insort(free, (space - size, index))
    return [concat_examples([examples[i] for i in members]) for members in bins]


def single_rows(examples: Sequence[Example]) -> list[Row]:
    """One example per row (no packing)."""
    return [concat_examples([example]) for example in examples]


def rows_dataset(rows: Sequence[Row], sources: Sequence[str]) -> Dataset:
    """Rows as a datasets.Dataset; ``source_tokens`` is a vector aligned with ``sources``."""
    return Dataset.from_dict(
        {
            "input_ids": [row.input_ids for row in rows],
            "labels": [row.labels for row in rows],
            "position_ids": [row.position_ids for row in rows],
            "source_tokens": [[row.source_tokens.get(s, 0) for s in sources] for row in rows],
        }
    )


@dataclass
class RowCollator:
    """Stack rows into a batch, padding on the right as a separate, unlabelled sequence.

    Args:
        pad_token_id: the id used for padding.
        pad_to: pad every row to this width (the "padded to max length" baseline); default the longest row.
    """

    pad_token_id: int
    pad_to: int | None = None

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        width = self.pad_to or max(len(f["input_ids"]) for f in features)
        input_ids = torch.full((len(features), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(features), width), IGNORE, dtype=torch.long)
        position_ids = torch.zeros((len(features), width), dtype=torch.long)
        for row, feature in enumerate(features):
            n = len(feature["input_ids"])
            input_ids[row, :n] = torch.tensor(feature["input_ids"], dtype=torch.long)
            labels[row, :n] = torch.tensor(feature["labels"], dtype=torch.long)
            position_ids[row, :n] = torch.tensor(feature["position_ids"], dtype=torch.long)
            position_ids[row, n:] = torch.arange(width - n)
        # per row, so the batch splits cleanly along its first dimension under any data-parallel launcher
        source_tokens = torch.tensor([f["source_tokens"] for f in features], dtype=torch.long)
        return {
            "input_ids": input_ids,
            "labels": labels,
            "position_ids": position_ids,
            "source_tokens": source_tokens,
        }
