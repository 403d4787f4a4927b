"""A cache of computed keys and values for token prefixes, so a prompt that repeats a known start skips it.

An agent's next turn repeats its whole history, and episodes of one eval repeat the same system prompt and
world. The batcher stores the keys and values of every prompt it prefills and every sequence it finishes in
a radix tree keyed by token ids: each node holds a run of tokens and, per layer, their keys and values. A new
prompt walks the tree as far as its tokens match; only the rest is run through the model.

Memory is bounded: when the stored tokens take more than ``max_bytes``, the least recently used leaves are
dropped (a leaf is the end of some stored sequence, so shared starts go last). Stored tensors are copies,
never views of a batch's cache, so dropping a node frees its memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

# per layer: (keys, values), each shaped (key/value heads, tokens, head dim)
LayerKeyValues = list[tuple[torch.Tensor, torch.Tensor]]


@dataclass(eq=False)
class _Node:
    tokens: tuple[int, ...]
    layers: LayerKeyValues
    parent: _Node | None
    last_used: int = 0
    children: dict[int, _Node] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        return sum(k.nbytes + v.nbytes for k, v in self.layers)


@dataclass(frozen=True)
class PrefixMatch:
    """The cached start of a prompt: its length and per layer keys and values, (1, heads, length, dim)."""

    length: int
    layers: LayerKeyValues


class PrefixCache:
    """A radix tree from token-id prefixes to their keys and values, within a memory bound.

    Args:
        max_bytes: the most bytes of keys and values kept; 0 keeps nothing.
    """

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        self.max_bytes = max_bytes
        self._root = _Node((), [], None)
        self._clock = 0
        self.nbytes = 0  # bytes held now
        self.tokens = 0  # tokens held now (a shared start counts once)
        self.hits = 0  # tokens served from the cache so far

    def match(self, tokens: Sequence[int], limit: int) -> PrefixMatch | None:
        """The longest cached start of ``tokens``, at most ``limit`` tokens long, or None."""
        self._clock += 1
        node, position, pieces = self._root, 0, []
        while position < limit:
            child = node.children.get(tokens[position])
            if child is None:
                break
            same = _common_length(child.tokens, tokens, position, limit)
            child.last_used = self._clock
            pieces.append((child, same))
            position += same
            if same < len(child.tokens):
                break
            node = child
        if position == 0:
            return None
        layers = [
            (
                torch.cat([n.layers[i][0][:, :same] for n, same in pieces], dim=1).unsqueeze(0),
                torch.cat([n.layers[i][1][:, :same] for n, same in pieces], dim=1).unsqueeze(0),
            )
            for i in range(len(pieces[0][0].layers))
        ]
        self.hits += position
        return PrefixMatch(position, layers)

    def insert(self, tokens: Sequence[int], layers: LayerKeyValues) -> None:
        """Store ``tokens`` with their keys and values (per layer, shaped (heads, len(tokens), dim)).

        Only the part of ``tokens`` not already in the tree is copied. Least recently used leaves are then
        dropped until the memory bound holds again (possibly the sequence just stored).
        """
        if self.max_bytes == 0 or not tokens:
            return
        self._clock += 1
        node, position = self._root, 0
        while position < len(tokens):
            child = node.children.get(tokens[position])
            if child is None:
                leaf = _Node(
                    tuple(tokens[position:]),
                    [(k[:, position:].clone(), v[:, position:].clone()) for k, v in layers],
                    node,
                    self._clock,
                )
                node.children[leaf.tokens[0]] = leaf
                self.nbytes += leaf.nbytes
                self.tokens += len(leaf.tokens)
                break
            same = _common_length(child.tokens, tokens, position, len(tokens))
            if same < len(child.tokens):
                child = self._split(child, same)
            child.last_used = self._clock
            node, position = child, position + same
        self._evict()

    def clear(self) -> None:
        self._root = _Node((), [], None)
        self.nbytes = self.tokens = 0

    def _split(self, node: _Node, at: int) -> _Node:
        """Cut ``node`` after ``at`` tokens; returns the new upper part (the old node keeps the rest)."""
        assert node.parent is not None
        upper = _Node(
            node.tokens[:at],
            [(k[:, :at].clone(), v[:, :at].clone()) for k, v in node.layers],
            node.parent,
            node.last_used,
        )
        node.parent.children[upper.tokens[0]] = upper
        node.tokens = node.tokens[at:]
        node.layers = [(k[:, at:].clone(), v[:, at:].clone()) for k, v in node.layers]
        node.parent = upper
        upper.children[node.tokens[0]] = node
        return upper

    def _evict(self) -> None:
        while self.nbytes > self.max_bytes:
            leaves = [n for n in self._nodes() if not n.children]
            oldest = min(leaves, key=lambda n: n.last_used)
            assert oldest.parent is not None
            del oldest.parent.children[oldest.tokens[0]]
            self.nbytes -= oldest.nbytes
            self.tokens -= len(oldest.tokens)

    def _nodes(self) -> list[_Node]:
        out, stack = [], list(self._root.children.values())
        while stack:
            node = stack.pop()
            out.append(node)
            stack.extend(node.children.values())
        return out


def _common_length(stored: tuple[int, ...], tokens: Sequence[int], start: int, limit: int) -> int:
    """How many of ``stored`` equal ``tokens[start:limit]`` from the beginning."""
    end = min(len(stored), limit - start)
    for i in range(end):
        if stored[i] != tokens[start + i]:
            return i
    return end
