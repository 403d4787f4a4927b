"""Weight-only int8 for the embedded engine (model arg ``dtype: int8``), an opt-in for speed.

Each linear layer's weight is stored as int8 with one scale per output row (the row's largest magnitude over
127); activations, norms, embeddings and the key-value cache are bfloat16. A decoding step's products run in
PyTorch's int8-weight kernel and read a quarter of float32's bytes; a prompt's widen the weight to bfloat16
first (see :data:`PACKED_ROWS`).

It changes the model: on the organism's episodes the next-token distribution moves by a KL of about 0.01
nats per token from the float32 model's (bfloat16 alone: about 0.002; the organism's whole training moved it
by 0.9 -- see README, "The embedded engine"). A training step whose change to a weight is smaller than half
that row's int8 step is partly rounded away, so compare checkpoints in the type they were trained in;
``int8`` is for roles that run a fixed model (generator, judge, auditor) and for quick looks.
Activation quantization (``torch.ao``'s dynamic int8) is not offered: it moved the same distribution by a KL
of 2.45, more than the organism's training did (``teachwhy bench dtype`` measures all of these).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

PACKED_ROWS = 32
"""Up to this many rows per product (tokens across the batch) use the int8 kernel; more widen the weight.
On a CPU the int8 kernel is the fastest for a few rows and several times slower than a dense bfloat16
product for a prompt of hundreds of tokens."""


class Int8WeightLinear(nn.Module):
    """A linear layer whose weight is int8 with one scale per output row; computes in the input's type."""

    weight_int8: torch.Tensor
    scale: torch.Tensor

    def __init__(self, linear: nn.Linear, compute_dtype: torch.dtype = torch.bfloat16) -> None:
        super().__init__()
        weight = linear.weight.detach().to(torch.float32)
        scale = (weight.abs().amax(dim=1) / 127.0).clamp(min=torch.finfo(torch.float32).tiny)
        # the kernel takes the scales in the compute type: round them up into it (by more than its precision)
        # and round the weights onto that grid, so no weight leaves int8's range or misses its nearest step
        scale = (scale * (1 + 2**-6)).to(compute_dtype)
        grid = torch.round(weight / scale.to(torch.float32)[:, None]).clamp(-127, 127)
        self.register_buffer("weight_int8", grid.to(torch.int8))
        self.register_buffer("scale", scale)
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().to(compute_dtype))
        self.in_features = linear.in_features
        self.out_features = linear.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features).to(self.scale.dtype).contiguous()
        if flat.shape[0] <= PACKED_ROWS:  # decoding: the int8 kernel reads a quarter of float32's bytes
            out: torch.Tensor = torch.ops.aten._weight_int8pack_mm(flat, self.weight_int8, self.scale)
        else:  # a prompt: widening the weight once and one dense product is several times faster
            weight = self.weight_int8.to(self.scale.dtype) * self.scale[:, None]
            out = nn.functional.linear(flat, weight)
        out = out.reshape(*x.shape[:-1], self.out_features)
        return out if self.bias is None else out + self.bias

    def dequantized(self) -> torch.Tensor:
        """The weight this layer computes with, in float32 (for checks)."""
        return self.weight_int8.to(torch.float32) * self.scale.to(torch.float32)[:, None]


def quantize_weights_int8(model: Any, compute_dtype: torch.dtype = torch.bfloat16) -> int:
    """Replace every ``nn.Linear`` of a float32 ``model`` in place and cast the rest to ``compute_dtype``.

    Returns the number of layers replaced. A weight shared with an embedding (tied output layer) is
    quantized for the product only; the embedding keeps its own copy in ``compute_dtype``.
    """
    replaced = 0
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.Linear):
                setattr(module, name, Int8WeightLinear(child, compute_dtype))
                replaced += 1
    model.to(compute_dtype)  # floating tensors only: the int8 weights stay int8
    return replaced


__all__ = ["Int8WeightLinear", "quantize_weights_int8"]
