"""``teachwhy bench dtype``: how far each weights type moves a model from its float32 self.

The reference is the shipped model organism in float32 (the bundled model with the package's organism adapter
merged in), read over organism episodes rendered with its chat template. For each type the embedded engine
offers, and for PyTorch's dynamic int8 (which it does not offer), the command prints the mean per-token
KL(float32 || type) over every position. The untrained bundled model's KL from the organism is printed
beside them: it is the size of a whole training run's effect, the scale a type's error must stay far below.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table


def _organism(base: Path) -> Any:
    """The bundled model with the shipped organism adapter merged in, float32."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from teachwhy.experiment.organism_bundle import shipped_root

    bundles = sorted(p for p in shipped_root().iterdir() if (p / "adapter_config.json").is_file())
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    return PeftModel.from_pretrained(model, bundles[0]).merge_and_unload().eval()


def _episodes(tokenizer: Any, count: int, max_tokens: int) -> list[Any]:
    """``count`` organism episodes (two train worlds per family), as token ids cut at ``max_tokens``."""
    import json

    from teachwhy.data.organism import build_organism_data

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "organism.jsonl"
        build_organism_data(["blackmail", "research_sabotage", "framing"], 2, seed=0, out_file=out)
        records = [json.loads(line) for line in out.read_text().splitlines()]
    picked = records[:: max(1, len(records) // count)][:count]
    return [
        tokenizer.apply_chat_template(r["messages"], return_tensors="pt", return_dict=True)["input_ids"][
            :, :max_tokens
        ]
        for r in picked
    ]


def mean_kl(reference: list[Any], other: list[Any]) -> float:
    """Mean over episodes of the per-token KL(reference || other), from log-probabilities."""
    total = 0.0
    for p, q in zip(reference, other, strict=True):
        total += float((p.exp() * (p - q)).sum(-1).mean())
    return total / len(reference)


def bench_dtype(
    episodes: Annotated[int, typer.Option(min=1, help="Organism episodes to read.")] = 3,
    max_tokens: Annotated[int, typer.Option(min=16, help="Tokens read per episode.")] = 1024,
    threads: Annotated[int | None, typer.Option(min=1, help="CPU threads (default: torch's).")] = None,
) -> None:
    """How far each weights type moves the shipped organism from float32 (mean per-token KL)."""
    import copy

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from teachwhy.models.embedded import materialise_embedded
    from teachwhy.models.quantize import quantize_weights_int8

    if threads is not None:
        torch.set_num_threads(threads)
    base = materialise_embedded()
    tokenizer = AutoTokenizer.from_pretrained(base)
    batch = _episodes(tokenizer, episodes, max_tokens)

    def log_probs(model: Any) -> list[Any]:
        with torch.no_grad():
            return [torch.log_softmax(model(ids).logits.float(), dim=-1) for ids in batch]

    organism = _organism(base)
    reference = log_probs(organism)
    rows: list[tuple[str, str, float]] = []
    untrained: Any = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    untrained.eval()
    rows.append(
        ("untrained model, float32", "scale: a whole training run", mean_kl(reference, log_probs(untrained)))
    )
    del untrained
    for name in ("bfloat16", "float16"):
        rows.append(
            (
                f"organism, {name}",
                "offered",
                mean_kl(reference, log_probs(copy.deepcopy(organism).to(getattr(torch, name)))),
            )
        )
    int8 = copy.deepcopy(organism)
    quantize_weights_int8(int8)
    rows.append(
        ("organism, int8 weights + bfloat16", "offered (dtype: int8)", mean_kl(reference, log_probs(int8)))
    )
    del int8
    quantize_dynamic: Any = torch.ao.quantization.quantize_dynamic  # untyped in torch
    dynamic = quantize_dynamic(copy.deepcopy(organism), {torch.nn.Linear}, dtype=torch.qint8)
    rows.append(("organism, torch.ao dynamic int8", "not offered", mean_kl(reference, log_probs(dynamic))))

    tokens = sum(int(ids.shape[1]) for ids in batch)
    table = Table(
        title=f"KL(organism float32 || model), mean per token over {len(batch)} episodes, {tokens} tokens"
    )
    for column in ("model", "embedded engine", "KL (nats/token)"):
        table.add_column(column)
    for model_name, offered, kl in rows:
        table.add_row(model_name, offered, f"{kl:.5f}")
    Console().print(table)


__all__ = ["bench_dtype", "mean_kl"]
