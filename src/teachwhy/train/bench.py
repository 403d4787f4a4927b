"""``teachwhy bench train``: training tokens/s with packing vs padding every row to ``max_length``.

Both runs train the same model on the same mixed-length synthetic documents through :func:`train_model`, one
after the other in one process, for the same number of optimizer steps and the same rows per step. Tokens/s
counts real (non-padding) tokens, so the ratio is how much more text packing trains on per second.

The default model is a tiny randomly initialised Llama with a word-level tokenizer built on the spot (no
download, no cache); ``embedded`` uses SmolLM2-135M instead.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from teachwhy.config import TrainConfig, TrainStage
from teachwhy.train.callbacks import read_log
from teachwhy.train.run import train_model

_WORDS = 2000


@dataclass(frozen=True)
class BenchRun:
    """One side of the comparison."""

    name: str
    steps: int
    tokens: int
    seconds: float

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


def build_tiny_model(folder: Path, *, hidden: int = 64, layers: int = 2, seed: int = 0) -> Path:
    """A tiny random Llama and a word-level tokenizer over the benchmark's vocabulary, saved to ``folder``."""
    import torch
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import WhitespaceSplit
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<pad>", "<unk>", "<eos>"]
    vocab = {token: i for i, token in enumerate([*specials, *(_word(i) for i in range(_WORDS))])}
    backend = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=backend, pad_token="<pad>", unk_token="<unk>", eos_token="<eos>"
    )
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        pad_token_id=vocab["<pad>"],
        eos_token_id=vocab["<eos>"],
        bos_token_id=None,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _word(i: int) -> str:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return letters[i % 26] + letters[(i // 26) % 26] + letters[(i // 676) % 26] + str(i)


def synthetic_documents(path: Path, *, count: int, max_length: int, seed: int = 0) -> Path:
    """Documents whose lengths are log-uniform between 16 tokens and ``max_length`` (as real corpora skew
    short).

    With the word-level tokenizer one word is one token; with another tokenizer lengths are approximate.
    """
    rng = random.Random(seed)
    low, high = math.log(16), math.log(max(max_length - 1, 17))
    lines = []
    for i in range(count):
        length = int(math.exp(rng.uniform(low, high)))
        text = " ".join(_word(rng.randrange(_WORDS)) for _ in range(length))
        lines.append(json.dumps({"id": f"bench-{i}", "kind": "documents", "text": text}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _measure(name: str, log_path: Path, *, warmup: int) -> BenchRun:
    """Tokens and wall time between the end of step ``warmup`` and the last step (start-up left out)."""
    records = read_log(log_path)
    first, last = records[warmup - 1], records[-1]
    return BenchRun(
        name=name,
        steps=len(records) - warmup,
        tokens=last["tokens"] - first["tokens"],
        seconds=last["time"] - first["time"],
    )


def run_bench(
    *,
    model: str | Path | None = None,
    steps: int = 8,
    warmup: int = 2,
    docs: int = 400,
    max_length: int = 512,
    batch_size: int = 4,
    workdir: Path | None = None,
) -> tuple[BenchRun, BenchRun]:
    """Train packed and padded-to-max-length side by side; returns (packed, padded).

    Args:
        model: a model folder; default a tiny random model built in ``workdir``.
        steps: measured optimizer steps per side (after ``warmup`` unmeasured ones).
        warmup: steps left out of the measurement.
        docs: number of synthetic documents.
        max_length: row length (the padded side pads every row to it).
        batch_size: rows per step, the same on both sides.
        workdir: where to write the data, model and runs (default a temporary folder).
    """
    with tempfile.TemporaryDirectory(prefix="teachwhy-bench-") as tmp:
        root = Path(workdir) if workdir is not None else Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        model_path = Path(model) if model is not None else build_tiny_model(root / "tiny-model")
        data = synthetic_documents(root / "documents.jsonl", count=docs, max_length=max_length)
        runs = []
        for name, packing in (("packed", True), ("padded to max_length", False)):
            config = TrainConfig(
                method="lora",
                stages=[TrainStage(name="bench", kind="documents", max_steps=steps + warmup)],
                batch_size=batch_size,
                max_length=max_length,
                packing=packing,
                save_steps=10_000,
                warmup_ratio=0.0,
            )
            out = root / ("packed" if packing else "padded")
            shutil.rmtree(out, ignore_errors=True)
            train_model(
                model=model_path,
                data=[data],
                out_dir=out,
                config=config,
                progress=False,
                pad_to_max_length=not packing,
            )
            runs.append(_measure(name, out / "train_log.jsonl", warmup=warmup))
        return runs[0], runs[1]
