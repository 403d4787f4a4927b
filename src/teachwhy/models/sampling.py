"""Per-request decoding settings and token choice for the embedded provider's batcher.

Every request in a batch carries its own settings and its own random generator, so requests that share a
forward pass never share randomness: a request with a seed samples the same tokens whatever else is in the
batch (as long as the model's logits for it are the same).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Literal

import torch

StopReason = Literal["stop", "max_tokens", "model_length"]


@dataclass(frozen=True)
class SamplingSettings:
    """How one request chooses its tokens.

    Args:
        max_tokens: the most tokens to generate.
        temperature: 0 chooses the most likely token (greedy); above 0 samples.
        top_p: nucleus sampling mass, or None for no nucleus filter.
        top_k: keep only the k most likely tokens, or None.
        stop_seqs: generation stops when the decoded text contains one of these; the text is cut before it.
        seed: seeds this request's own random generator; None draws a fresh seed.
    """

    max_tokens: int
    temperature: float = 1.0
    top_p: float | None = None
    top_k: int | None = None
    stop_seqs: tuple[str, ...] = ()
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1, got {self.max_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {self.top_k}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0 or self.top_k == 1


@dataclass
class TokenChooser:
    """Chooses the next token for one request from its row of logits."""

    settings: SamplingSettings
    device: torch.device
    generator: torch.Generator = field(init=False)

    def __post_init__(self) -> None:
        seed = self.settings.seed if self.settings.seed is not None else random.getrandbits(63)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)

    def choose(self, logits: torch.Tensor) -> int:
        """Sample (or pick greedily) one token id from a 1-D row of logits."""
        if self.settings.greedy:
            return int(torch.argmax(logits).item())
        scores = logits.float() / self.settings.temperature
        if self.settings.top_k is not None and self.settings.top_k < scores.shape[-1]:
            kth = torch.topk(scores, self.settings.top_k).values[-1]
            scores = scores.masked_fill(scores < kth, float("-inf"))
        if self.settings.top_p is not None and self.settings.top_p < 1:
            sorted_scores, order = torch.sort(scores, descending=True)
            probs = torch.softmax(sorted_scores, dim=-1)
            # drop a token once the mass before it already reaches top_p; the first token always stays
            drop = (torch.cumsum(probs, dim=-1) - probs) >= self.settings.top_p
            scores = scores.scatter(0, order, sorted_scores.masked_fill(drop, float("-inf")))
        probs = torch.softmax(scores, dim=-1)
        return int(torch.multinomial(probs, 1, generator=self.generator).item())


def find_stop(text: str, stop_seqs: tuple[str, ...]) -> int | None:
    """The index where the earliest stop sequence starts in ``text``, or None."""
    hits = [index for index in (text.find(s) for s in stop_seqs if s) if index >= 0]
    return min(hits) if hits else None
