"""Duplicate removal in three passes, each near-linear in the number of items:

1. **exact**: texts equal after normalising case, punctuation and whitespace (a hash per item);
2. **n-gram**: near-duplicates by MinHash over word 5-grams with banded LSH; candidate pairs from a shared
   band are confirmed by their estimated Jaccard similarity (shingles are hashed with CRC32, so results are
   the same in every process and on every machine);
3. **embedding** (optional): near-duplicates in meaning, by cosine similarity of MiniLM sentence vectors;
   pairs are only compared inside random-hyperplane LSH buckets whose size stays constant as the set grows.

In every pass the earliest item of a group is kept and each later one is dropped with the reason, the item it
duplicates and the similarity.
"""

from __future__ import annotations

import hashlib
import math
import re
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

_MERSENNE = np.uint64((1 << 31) - 1)
_NON_WORD = re.compile(r"[^\w]+")


@dataclass(frozen=True)
class Duplicate:
    """One dropped item: which pass found it, which earlier item it duplicates, how similar they are."""

    index: int
    reason: str
    of: int
    similarity: float


@dataclass
class DedupResult:
    """Items to keep (indices, in order) and the duplicates dropped, by pass."""

    kept: list[int]
    duplicates: list[Duplicate] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for d in self.duplicates:
            out[d.reason] = out.get(d.reason, 0) + 1
        return out


class _UnionFind:
    """Groups items; the root of a group is always its smallest index (the item that is kept)."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))
        self.link: dict[int, tuple[int, float]] = {}

    def find(self, i: int) -> int:
        root = i
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[i] != root:
            self.parent[i], i = root, self.parent[i]
        return root

    def union(self, i: int, j: int, similarity: float) -> None:
        a, b = self.find(i), self.find(j)
        if a == b:
            return
        keep, drop = (a, b) if a < b else (b, a)
        self.parent[drop] = keep
        self.link.setdefault(drop, (keep, similarity))


def normalise(text: str) -> str:
    """Lowercase, punctuation removed, whitespace collapsed: what exact dedup compares."""
    return " ".join(_NON_WORD.sub(" ", text.lower()).split())


def exact_duplicates(texts: Sequence[str]) -> list[Duplicate]:
    """Items whose normalised text equals an earlier item's."""
    first: dict[bytes, int] = {}
    out: list[Duplicate] = []
    for i, text in enumerate(texts):
        key = hashlib.sha1(normalise(text).encode("utf-8")).digest()
        if key in first:
            out.append(Duplicate(i, "duplicate_exact", first[key], 1.0))
        else:
            first[key] = i
    return out


def shingle_hashes(text: str, n: int = 5) -> list[int]:
    """CRC32 hashes of the text's word n-grams (the whole text when it is shorter than ``n`` words)."""
    words = normalise(text).split()
    if len(words) < n:
        return [zlib.crc32(" ".join(words).encode("utf-8"))]
    return [zlib.crc32(" ".join(words[i : i + n]).encode("utf-8")) for i in range(len(words) - n + 1)]


def minhash_signatures(
    texts: Sequence[str], *, num_perm: int = 64, n: int = 5, seed: int = 1
) -> NDArray[np.uint64]:
    """MinHash signatures, shape ``(len(texts), num_perm)``, computed for all texts at once."""
    rng = np.random.default_rng(seed)
    a = rng.integers(1, int(_MERSENNE), size=num_perm, dtype=np.uint64)
    b = rng.integers(0, int(_MERSENNE), size=num_perm, dtype=np.uint64)
    per_text = [shingle_hashes(t, n) for t in texts]
    lengths = np.array([len(h) for h in per_text], dtype=np.int64)
    flat = np.fromiter((h for hs in per_text for h in hs), dtype=np.uint64, count=int(lengths.sum()))
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    signatures = np.empty((len(texts), num_perm), dtype=np.uint64)
    if not len(texts):
        return signatures
    for j in range(num_perm):  # a loop over permutations keeps memory at one column of all shingles
        values = (a[j] * flat + b[j]) % _MERSENNE
        signatures[:, j] = np.minimum.reduceat(values, starts)
    return signatures


def _band_keys(signatures: NDArray[np.uint64], bands: int) -> NDArray[np.uint64]:
    rows = signatures.shape[1] // bands
    mix = np.array([0x9E3779B97F4A7C15 * (k + 1) & 0xFFFFFFFFFFFFFFFF for k in range(rows)], dtype=np.uint64)
    keys = np.empty((signatures.shape[0], bands), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for band in range(bands):
            block = signatures[:, band * rows : (band + 1) * rows]
            keys[:, band] = (block * mix).sum(axis=1, dtype=np.uint64) + np.uint64(band)
    return keys


def _groups(keys: NDArray[Any]) -> list[NDArray[np.int64]]:
    """Indices that share a key, for each key held by more than one item (members in ascending order)."""
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    boundaries = np.flatnonzero(sorted_keys[1:] != sorted_keys[:-1]) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [len(keys)]])
    return [np.sort(order[s:e]) for s, e in zip(starts, ends, strict=True) if e - s > 1]


def ngram_duplicates(
    texts: Sequence[str], *, threshold: float = 0.7, num_perm: int = 64, bands: int = 16, n: int = 5
) -> list[Duplicate]:
    """Near-duplicates whose estimated word-5-gram Jaccard similarity is at least ``threshold``."""
    if len(texts) < 2:
        return []
    signatures = minhash_signatures(texts, num_perm=num_perm, n=n)
    keys = _band_keys(signatures, bands)
    uf = _UnionFind(len(texts))
    for band in range(bands):
        for members in _groups(keys[:, band]):
            anchor = int(members[0])
            similarity = (signatures[members] == signatures[anchor]).mean(axis=1)
            for member, sim in zip(members[1:], similarity[1:], strict=True):
                if sim >= threshold:
                    uf.union(anchor, int(member), float(sim))
    return _from_links(uf, len(texts), "near_duplicate_ngram")


def embedding_duplicates(
    vectors: NDArray[np.float32],
    *,
    threshold: float = 0.95,
    tables: int = 16,
    bucket_size: int = 32,
    seed: int = 0,
) -> list[Duplicate]:
    """Near-duplicates whose unit vectors have cosine similarity at least ``threshold``.

    Vectors are hashed into ``tables`` random-hyperplane LSH tables with enough bits that a bucket holds about
    ``bucket_size`` items whatever the set's size, so the work grows linearly; all pairs inside a bucket are
    compared exactly.
    """
    n = vectors.shape[0]
    if n < 2:
        return []
    uf = _UnionFind(n)
    if n <= 4 * bucket_size:  # small sets: compare everything
        _compare(vectors, np.arange(n, dtype=np.int64), threshold, uf)
        return _from_links(uf, n, "near_duplicate_embedding")
    bits = min(30, max(1, math.ceil(math.log2(n / bucket_size))))
    rng = np.random.default_rng(seed)
    weights = (1 << np.arange(bits, dtype=np.int64)).astype(np.int64)
    for _ in range(tables):
        planes = rng.standard_normal((vectors.shape[1], bits)).astype(np.float32)
        codes = ((vectors @ planes) > 0).astype(np.int64) @ weights
        # one gather per table puts each bucket in contiguous memory (no random access per bucket)
        order = np.argsort(codes, kind="stable")
        ordered = vectors[order]
        sorted_codes = codes[order]
        edges = np.flatnonzero(sorted_codes[1:] != sorted_codes[:-1]) + 1
        starts = np.concatenate([[0], edges])
        ends = np.concatenate([edges, [n]])
        for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
            if e - s > 1:
                _compare(ordered[s:e], order[s:e], threshold, uf)
    return _from_links(uf, n, "near_duplicate_embedding")


def _compare(block: NDArray[np.float32], ids: NDArray[np.int64], threshold: float, uf: _UnionFind) -> None:
    chunk = 1024  # bounds memory when one bucket is unusually large
    for start in range(0, len(ids), chunk):
        sims = block[start : start + chunk] @ block.T
        rows = ids[start : start + chunk]
        # only pairs (earlier, later): skips the diagonal and each pair's mirror image
        i_idx, j_idx = np.nonzero((sims >= threshold) & (ids[None, :] > rows[:, None]))
        for i, j in zip(i_idx.tolist(), j_idx.tolist(), strict=True):
            uf.union(int(rows[i]), int(ids[j]), float(sims[i, j]))


def _from_links(uf: _UnionFind, n: int, reason: str) -> list[Duplicate]:
    out = []
    for i in range(n):
        root = uf.find(i)
        if root != i:
            _, similarity = uf.link.get(i, (root, 0.0))
            out.append(Duplicate(i, reason, root, round(similarity, 4)))
    return out


def deduplicate(
    texts: Sequence[str],
    *,
    ngram_threshold: float | None = 0.7,
    embedding_threshold: float | None = None,
    embed: Callable[[Sequence[str]], NDArray[np.float32]] | None = None,
) -> DedupResult:
    """Run the passes in order (exact, n-gram, then embeddings when ``embed`` is given) on the survivors.

    Args:
        texts: the items' texts, in keep-priority order (earlier items are kept).
        ngram_threshold: Jaccard threshold for n-gram near-duplicates, or ``None`` to skip the pass.
        embedding_threshold: cosine threshold for embedding near-duplicates.
        embed: maps texts to unit vectors (e.g. :meth:`teachwhy.data.embeddings.Embedder.encode`).
    """
    alive = list(range(len(texts)))
    duplicates: list[Duplicate] = []

    def apply(found: list[Duplicate]) -> None:
        nonlocal alive
        mapped = [Duplicate(alive[d.index], d.reason, alive[d.of], d.similarity) for d in found]
        duplicates.extend(mapped)
        gone = {d.index for d in mapped}
        alive = [i for i in alive if i not in gone]

    apply(exact_duplicates(texts))
    if ngram_threshold is not None:
        apply(ngram_duplicates([texts[i] for i in alive], threshold=ngram_threshold))
    if embed is not None and embedding_threshold is not None and len(alive) > 1:
        vectors = embed([texts[i] for i in alive])
        apply(embedding_duplicates(vectors, threshold=embedding_threshold))
    return DedupResult(kept=alive, duplicates=sorted(duplicates, key=lambda d: d.index))
