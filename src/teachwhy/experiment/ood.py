"""How far each arm's training data is from each evaluation's prompts (out-of-distribution distance).

Two measures, computed for every arm × evaluation pair:

- **n-gram overlap** (a contamination check): the share of the evaluation's distinct word n-grams (8-grams
  by default, over lower-cased, punctuation-free text) that also occur anywhere in the training text. Both
  sides are reduced to sets of hashed n-grams, so the cost is linear in the amount of text. A pair above the
  threshold is flagged ``contaminated``, with a few of the shared n-grams kept as evidence.
- **embedding nearest-neighbour similarity**: texts are split into passages that fit MiniLM's window and
  embedded (mean pooling, unit length). An evaluation prompt's similarity is the mean over its passages of the
  cosine similarity to the closest training passage, so a prompt copied verbatim into the training data scores
  1.0 and a paraphrase scores high. The pair reports the mean and the max over prompts.

The article's central claim is about generalisation *out of* the evaluation distribution; these numbers let a
reader check how far from the evaluation each intervention's data really is.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from teachwhy.experiment.summary import OodDistance
from teachwhy.storage import iter_jsonl

DEFAULT_NGRAM = 8
DEFAULT_THRESHOLD = 0.05
"""Share of an evaluation's 8-grams found in the training data above which the pair is flagged contaminated.
Unrelated English text shares essentially no 8-grams, so even 5% means copied passages."""
PASSAGE_WORDS = 160
"""Words per embedded passage: about 200 word pieces, inside MiniLM's 256-token window."""
MAX_EXAMPLES = 5

_WORD = re.compile(r"\w+")


class TextEmbedder(Protocol):
    """Anything that turns texts into unit-length vectors (one row per text)."""

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]: ...


# --- texts ------------------------------------------------------------------------------------------------


def record_text(record: Mapping[str, Any]) -> str:
    """The trainable text of a record: its ``text``, or its messages' contents joined by blank lines."""
    text = record.get("text")
    if isinstance(text, str):
        return text
    messages = record.get("messages")
    if isinstance(messages, list):
        parts = [m.get("content") for m in messages if isinstance(m, dict)]
        return "\n\n".join(p for p in parts if isinstance(p, str) and p)
    return ""


def training_texts(files: Iterable[str | Path]) -> list[str]:
    """Every record's text from dataset JSONL files (records without text are skipped)."""
    texts: list[str] = []
    for path in files:
        texts.extend(t for record in iter_jsonl(path) if (t := record_text(record)))
    return texts


def words(text: str) -> list[str]:
    """The normalised words of ``text``: Unicode-compatibility folded, lower-cased, punctuation dropped."""
    return _WORD.findall(unicodedata.normalize("NFKC", text).casefold())


def passages(text: str, size: int = PASSAGE_WORDS) -> list[str]:
    """``text`` cut into consecutive passages of at most ``size`` words (none for a text without words)."""
    tokens = text.split()
    return [" ".join(tokens[i : i + size]) for i in range(0, len(tokens), size)]


# --- n-gram overlap --------------------------------------------------------------------------------


@dataclass(frozen=True)
class NgramOverlap:
    """How many of an evaluation's distinct n-grams the training data contains."""

    n: int
    shared: int
    total: int  # distinct n-grams in the evaluation prompts
    examples: tuple[str, ...]

    @property
    def share(self) -> float:
        return self.shared / self.total if self.total else 0.0


def _grams(tokens: list[str], n: int) -> Iterable[tuple[str, ...]]:
    return (tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def ngram_set(texts: Iterable[str], n: int = DEFAULT_NGRAM) -> set[int]:
    """Hashes of every word n-gram in ``texts`` (an n-gram never spans two texts)."""
    out: set[int] = set()
    for text in texts:
        out.update(hash(g) for g in _grams(words(text), n))
    return out


def ngram_overlap(
    training: Iterable[str] | set[int],
    prompts: Sequence[str],
    *,
    n: int = DEFAULT_NGRAM,
    max_examples: int = MAX_EXAMPLES,
) -> NgramOverlap:
    """The share of the prompts' distinct n-grams that occur in the training texts.

    Args:
        training: training texts, or an :func:`ngram_set` of them already built with the same ``n``.
        prompts: the evaluation prompts.
        n: n-gram length in words.
        max_examples: how many shared n-grams to keep as readable evidence.
    """
    if n < 1:
        raise ValueError("n must be at least 1")
    train = training if isinstance(training, set) else ngram_set(training, n)
    seen: set[int] = set()
    shared = 0
    examples: list[str] = []
    for prompt in prompts:
        for gram in _grams(words(prompt), n):
            key = hash(gram)
            if key in seen:
                continue
            seen.add(key)
            if key in train:
                shared += 1
                if len(examples) < max_examples:
                    examples.append(" ".join(gram))
    return NgramOverlap(n=n, shared=shared, total=len(seen), examples=tuple(examples))


# --- embedding similarity ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PassageVectors:
    """Unit vectors of a set of texts' passages, and which text each passage came from."""

    vectors: NDArray[np.float32]
    owner: NDArray[np.int64]  # index of the text each row belongs to
    texts: int

    @classmethod
    def build(
        cls, texts: Sequence[str], embedder: TextEmbedder, *, size: int = PASSAGE_WORDS
    ) -> PassageVectors:
        chunks: list[str] = []
        owner: list[int] = []
        for i, text in enumerate(texts):
            for chunk in passages(text, size):
                chunks.append(chunk)
                owner.append(i)
        vectors = embedder.encode(chunks) if chunks else np.zeros((0, 1), dtype=np.float32)
        return cls(np.asarray(vectors, dtype=np.float32), np.asarray(owner, dtype=np.int64), len(texts))


@dataclass(frozen=True)
class NeighbourSimilarity:
    """Per evaluation prompt, its similarity to the closest training data."""

    per_prompt: tuple[float, ...]

    @property
    def mean(self) -> float:
        return float(np.mean(self.per_prompt)) if self.per_prompt else 0.0

    @property
    def max(self) -> float:
        return float(np.max(self.per_prompt)) if self.per_prompt else 0.0


def nearest_neighbour_similarity(
    training: PassageVectors, prompts: PassageVectors, *, block: int = 4096
) -> NeighbourSimilarity:
    """For each prompt: the mean over its passages of the best cosine similarity to any training passage.

    Prompts without words score 0; with no training passages every prompt scores 0. The similarity matrix is
    computed ``block`` training passages at a time, so memory stays bounded for large training sets.
    """
    if len(prompts.vectors) == 0 or len(training.vectors) == 0:
        return NeighbourSimilarity(tuple(0.0 for _ in range(prompts.texts)))
    best = np.full(len(prompts.vectors), -1.0, dtype=np.float32)
    for start in range(0, len(training.vectors), block):
        sims = prompts.vectors @ training.vectors[start : start + block].T
        np.maximum(best, sims.max(axis=1), out=best)
    per_prompt = []
    for i in range(prompts.texts):
        rows = best[prompts.owner == i]
        per_prompt.append(float(np.clip(rows.mean(), -1.0, 1.0)) if len(rows) else 0.0)
    return NeighbourSimilarity(tuple(per_prompt))


# --- arm × evaluation ---------------------------------------------------------------------------------------


def ood_distances(
    arms: Mapping[str, Sequence[str]],
    evaluations: Mapping[str, Sequence[str]],
    *,
    n: int = DEFAULT_NGRAM,
    threshold: float = DEFAULT_THRESHOLD,
    embedder: TextEmbedder | None = None,
) -> list[OodDistance]:
    """The OOD distance of every arm's training texts from every evaluation's prompts.

    Each text set is embedded once, however many pairs it takes part in. An arm without training texts (the
    untrained baseline) is skipped: there is nothing to be near.

    Args:
        arms: arm name → its training texts (see :func:`training_texts` / :func:`record_text`).
        evaluations: evaluation name (e.g. ``blackmail``) → its rendered prompts.
        n: n-gram length in words.
        threshold: ``ngram_overlap`` above which the pair is flagged ``contaminated``.
        embedder: the sentence embedder; default: the shared MiniLM from :mod:`teachwhy.data.embeddings`.
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError("threshold must be between 0 and 1")
    if embedder is None:
        from teachwhy.data.embeddings import default_embedder

        embedder = default_embedder()
    eval_vectors = {name: PassageVectors.build(prompts, embedder) for name, prompts in evaluations.items()}
    out: list[OodDistance] = []
    for arm, texts in arms.items():
        if not texts:
            continue
        grams = ngram_set(texts, n)
        train_vectors = PassageVectors.build(texts, embedder)
        for evaluation, prompts in evaluations.items():
            overlap = ngram_overlap(grams, prompts, n=n)
            similarity = nearest_neighbour_similarity(train_vectors, eval_vectors[evaluation])
            contaminated = overlap.share > threshold
            out.append(
                OodDistance(
                    arm=arm,
                    evaluation=evaluation,
                    ngram_overlap=overlap.share,
                    contaminated=contaminated,
                    nn_similarity_mean=similarity.mean,
                    nn_similarity_max=similarity.max,
                    ngram_n=n,
                    examples=list(overlap.examples),
                    ngram_shared=overlap.shared,
                    ngram_total=overlap.total,
                )
            )
    return out


def ood_distance(
    arm: str,
    evaluation: str,
    training: Sequence[str],
    prompts: Sequence[str],
    *,
    n: int = DEFAULT_NGRAM,
    threshold: float = DEFAULT_THRESHOLD,
    embedder: TextEmbedder | None = None,
) -> OodDistance:
    """The OOD distance of one arm's training texts from one evaluation's prompts.

    See :func:`ood_distances`.
    """
    if not training:
        raise ValueError(f"arm '{arm}' has no training texts to compare")
    (result,) = ood_distances(
        {arm: training}, {evaluation: prompts}, n=n, threshold=threshold, embedder=embedder
    )
    return result
