"""`teachwhy bench dedup`: dedup time at two sizes, printed beside the size ratio (near-linear scaling).

Synthetic items are random word sequences (seeded) with planted near-duplicates (a copy with a few words
changed); the embedding pass runs on synthetic unit vectors with planted near-duplicates (a copy plus small
noise), because encoding 100k texts with MiniLM on a CPU measures the encoder, which is linear by
construction, rather than the duplicate search.

Times are this process's CPU seconds (``time.process_time``), so machines shared with other work still give
comparable ratios.
"""

from __future__ import annotations

import gc
import random
import time
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from teachwhy.data.dedup import embedding_duplicates, exact_duplicates, ngram_duplicates


@dataclass(frozen=True)
class BenchRow:
    """One pass at one size."""

    name: str
    items: int
    seconds: float
    found: int
    planted: int


def synthetic_texts(
    n: int, *, seed: int = 0, duplicate_rate: float = 0.1, words: int = 60
) -> tuple[list[str], int]:
    """``n`` texts and how many of them are planted near-copies (one word changed) of an earlier one."""
    rng = random.Random(seed)
    vocabulary = [f"w{i}" for i in range(5000)]
    texts: list[str] = []
    planted = 0
    for i in range(n):
        if i > 0 and rng.random() < duplicate_rate:
            base = texts[rng.randrange(i)].split()
            base[rng.randrange(len(base))] = rng.choice(vocabulary)  # one word changed
            texts.append(" ".join(base))
            planted += 1
        else:
            texts.append(" ".join(rng.choice(vocabulary) for _ in range(words)))
    return texts, planted


def synthetic_vectors(
    n: int, *, seed: int = 0, duplicate_rate: float = 0.1, dim: int = 384
) -> tuple[NDArray[np.float32], int]:
    """Unit vectors with planted near-duplicates (cosine ≈ 0.99 to their original)."""
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    is_copy = rng.random(n) < duplicate_rate
    is_copy[0] = False
    copies = np.flatnonzero(is_copy)
    originals = np.flatnonzero(~is_copy)
    sources = originals[rng.integers(0, len(originals), size=len(copies))]
    vectors[copies] = vectors[sources] + 0.1 * rng.standard_normal((len(copies), dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors, len(copies)


def run_dedup_bench(sizes: tuple[int, int] = (10_000, 100_000), *, seed: int = 0) -> list[BenchRow]:
    """Time each pass at each size.

    Python's cyclic garbage collector is paused while timing: its cost grows with the heap, not with the work.
    """
    gc.collect()
    gc.disable()
    try:
        return _run(sizes, seed)
    finally:
        gc.enable()


def _run(sizes: tuple[int, int], seed: int) -> list[BenchRow]:
    rows = []
    for n in sizes:
        texts, planted = synthetic_texts(n, seed=seed)
        start = time.process_time()
        exact = exact_duplicates(texts)
        rows.append(BenchRow("exact", n, time.process_time() - start, len(exact), 0))
        start = time.process_time()
        near = ngram_duplicates(texts)
        rows.append(BenchRow("ngram (MinHash LSH)", n, time.process_time() - start, len(near), planted))
        vectors, planted_vectors = synthetic_vectors(n, seed=seed)
        start = time.process_time()
        found = embedding_duplicates(vectors)
        rows.append(
            BenchRow(
                "embedding (hyperplane LSH)", n, time.process_time() - start, len(found), planted_vectors
            )
        )
    return rows


def scaling_ratios(rows: list[BenchRow]) -> dict[str, tuple[float, float]]:
    """For each pass: (time ratio, item ratio) between the larger and the smaller size."""
    out = {}
    for name in dict.fromkeys(r.name for r in rows):
        small, large = sorted((r for r in rows if r.name == name), key=lambda r: r.items)[:2]
        out[name] = (large.seconds / max(small.seconds, 1e-9), large.items / small.items)
    return out
