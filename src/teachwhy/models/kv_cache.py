"""The batcher's key/value cache: rows of different lengths stacked with left padding, grown in place.

transformers' ``DynamicLayer`` appends each new token with ``torch.cat``, which copies the whole cache at
every decoding step; with long agent prompts that copy costs more than the attention itself. A
:class:`GrowingLayer` keeps its keys and values in buffers with room to spare and exposes views of the used
part, so a step writes one column. Whoever replaces ``keys``/``values`` directly (stacking rows, dropping
padding) simply gets a fresh buffer on the next update.
"""

from __future__ import annotations

from typing import Any, cast

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from teachwhy.models.prefix_cache import LayerKeyValues

_HEADROOM = 128  # spare columns at least, when a buffer is (re)allocated


class GrowingLayer(DynamicLayer):  # type: ignore[no-untyped-call]
    """A plain key/value layer whose ``keys`` and ``values`` are views into larger, reused buffers."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._key_buffer: torch.Tensor | None = None
        self._value_buffer: torch.Tensor | None = None
        self._view: torch.Tensor | None = None  # the ``keys`` this layer last handed out

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        length = self.get_seq_length()
        needed = length + key_states.shape[-2]
        buffer = self._key_buffer
        if buffer is None or self.keys is not self._view or needed > buffer.shape[-2]:
            capacity = needed + max(_HEADROOM, needed // 4)
            keys = key_states.new_empty((*key_states.shape[:2], capacity, key_states.shape[-1]))
            values = value_states.new_empty((*value_states.shape[:2], capacity, value_states.shape[-1]))
            if length and self.keys is not None and self.values is not None:
                keys[:, :, :length].copy_(self.keys)
                values[:, :, :length].copy_(self.values)
            self._key_buffer, self._value_buffer = keys, values
        assert self._key_buffer is not None and self._value_buffer is not None
        self._key_buffer[:, :, length:needed].copy_(key_states)
        self._value_buffer[:, :, length:needed].copy_(value_states)
        self.keys = self._key_buffer[:, :, :needed]
        self.values = self._value_buffer[:, :, :needed]
        self._view = self.keys
        return self.keys, self.values

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self._key_buffer is None or self._value_buffer is None or self.keys is not self._view:
            super().batch_select_indices(indices)
            return
        length = self.get_seq_length()
        self._key_buffer = self._key_buffer[indices]
        self._value_buffer = self._value_buffer[indices]
        self.keys = self._key_buffer[:, :, :length]
        self.values = self._value_buffer[:, :, :length]
        self._view = self.keys


def stackable(config: Any) -> bool:
    """Whether this model's cache is a plain per-layer key/value store (no sliding windows, no states)."""
    return all(type(layer) is DynamicLayer for layer in DynamicCache(config=config).layers)


def new_cache(config: Any, *, grow: bool, prefix: LayerKeyValues | None = None) -> DynamicCache:
    """An empty cache for one forward pass, or one already holding a cached prefix (shaped (1, h, n, d))."""
    cache = DynamicCache(config=config)
    if grow:
        cache.layers = [GrowingLayer() for _ in cache.layers]
    if prefix is not None:
        for layer, (keys, values) in zip(cast(list[DynamicLayer], cache.layers), prefix, strict=True):
            layer.lazy_initialization(keys, values)
            layer.keys, layer.values = keys, values
    return cache


def kv_layers(cache: DynamicCache) -> list[tuple[DynamicLayer, torch.Tensor, torch.Tensor]]:
    """Each plain key/value layer with its keys and values (only called on caches known to be plain)."""
    out = []
    for layer in cast(list[DynamicLayer], cache.layers):
        if not layer.is_initialized or layer.keys is None or layer.values is None:
            raise RuntimeError("a key/value cache layer is empty; this model's cache cannot be stacked")
        out.append((layer, layer.keys, layer.values))
    return out


def row_key_values(cache: DynamicCache, row: int, length: int) -> LayerKeyValues:
    """Row ``row``'s last ``length`` columns (its real tokens, rows being left-padded), per layer; views."""
    return [(keys[row, :, -length:], values[row, :, -length:]) for _, keys, values in kv_layers(cache)]


def stack(parts: list[tuple[DynamicCache, torch.Tensor]]) -> tuple[DynamicCache, torch.Tensor]:
    """Stack left-padded batches (cache, mask) into the first one, left-padding each to the longest."""
    width = max(mask.shape[1] for _, mask in parts)
    first = parts[0][0]
    layers = [kv_layers(cache) for cache, _ in parts]
    for i, (layer, _, _) in enumerate(layers[0]):
        layer.keys = torch.cat([pad_left(part[i][1], width) for part in layers], dim=0)
        layer.values = torch.cat([pad_left(part[i][2], width) for part in layers], dim=0)
    mask = torch.cat([pad_left(m, width, dim=1) for _, m in parts], dim=0)
    return first, mask


def drop_leading_columns(cache: DynamicCache, start: int) -> None:
    for layer, keys, values in kv_layers(cache):
        layer.keys, layer.values = keys[:, :, start:, :], values[:, :, start:, :]


def pad_left(tensor: torch.Tensor, width: int, dim: int = 2) -> torch.Tensor:
    missing = width - tensor.shape[dim]
    if missing <= 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = missing
    return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)
