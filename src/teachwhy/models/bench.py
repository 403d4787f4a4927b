"""`teachwhy bench embedded`: Inspect's ``hf`` provider and teachwhy's ``embedded`` provider, side by side.

Both serve the same materialised SmolLM2 folder on the same device, greedily, with the same requests:

- *concurrent*: N single-turn prompts sent at once (the shape of data generation);
- *multi-turn*: C conversations in parallel, each T sequential turns where every turn waits for the previous
  reply (the shape of an agent or an auditor talking to a target).

Model loading and a warm-up request are excluded from the timings. The ratio is hf time / embedded time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from inspect_ai.model import Model

TOPICS = (
    "rivers", "volcanoes", "honeybees", "lighthouses", "glaciers", "libraries", "bridges", "comets",
    "forests", "deserts", "harbours", "bicycles", "windmills", "coral reefs", "clocks", "maps",
)  # fmt: skip


@dataclass(frozen=True)
class Timing:
    """One provider's wall time on one request pattern."""

    pattern: str
    provider: str
    seconds: float
    requests: int
    output_tokens: int

    @property
    def tokens_per_s(self) -> float:
        return self.output_tokens / self.seconds if self.seconds > 0 else 0.0


def _prompt(i: int) -> str:
    return f"Write three sentences about {TOPICS[i % len(TOPICS)]}."


async def _concurrent(model: Model, prompts: int, tokens: int) -> tuple[int, int]:
    from inspect_ai.model import GenerateConfig

    config = GenerateConfig(max_tokens=tokens, temperature=0.0)
    outputs = await asyncio.gather(*(model.generate(_prompt(i), config=config) for i in range(prompts)))
    return len(outputs), sum(o.usage.output_tokens if o.usage else 0 for o in outputs)


async def _multi_turn(model: Model, conversations: int, turns: int, tokens: int) -> tuple[int, int]:
    from inspect_ai.model import ChatMessage, ChatMessageUser, GenerateConfig

    config = GenerateConfig(max_tokens=tokens, temperature=0.0)

    async def conversation(c: int) -> int:
        messages: list[ChatMessage] = [ChatMessageUser(content=_prompt(c))]
        produced = 0
        for _ in range(turns):
            output = await model.generate(messages, config=config)
            produced += output.usage.output_tokens if output.usage else 0
            messages += [output.message, ChatMessageUser(content="Tell me one more fact about that.")]
        return produced

    produced = await asyncio.gather(*(conversation(c) for c in range(conversations)))
    return conversations * turns, sum(produced)


def _providers(folder: Path, device: str, max_batch: int) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        ("hf", "hf/local", {"model_path": str(folder), "device": device, "do_sample": False}),
        ("embedded", f"embedded/{folder}", {"device": device, "max_batch": max_batch}),
    ]


def run_benchmark(
    *, prompts: int = 16, tokens: int = 48, conversations: int = 4, turns: int = 3, device: str = "cpu"
) -> list[Timing]:
    """Time both providers on both patterns; returns one :class:`Timing` per provider and pattern."""
    from inspect_ai.model import GenerateConfig, get_model

    from teachwhy.models.embedded import materialise_embedded

    folder = materialise_embedded()
    timings: list[Timing] = []
    max_batch = max(prompts, conversations)
    patterns: list[tuple[str, Callable[[Model], Coroutine[Any, Any, tuple[int, int]]]]] = [
        (f"concurrent {prompts}×{tokens}", partial(_concurrent, prompts=prompts, tokens=tokens)),
        (
            f"multi-turn {conversations}×{turns} turns×{tokens}",
            partial(_multi_turn, conversations=conversations, turns=turns, tokens=tokens),
        ),
    ]
    for label, name, args in _providers(folder, device, max_batch):
        model = get_model(name, config=GenerateConfig(max_connections=max_batch), memoize=False, **args)
        try:
            asyncio.run(model.generate("Hello.", config=GenerateConfig(max_tokens=2, temperature=0.0)))
            for pattern, run in patterns:
                start = time.perf_counter()
                requests, produced = asyncio.run(run(model))
                timings.append(Timing(pattern, label, time.perf_counter() - start, requests, produced))
        finally:
            model.api.close()
    return timings


def bench_embedded(
    prompts: Annotated[int, typer.Option(min=1, help="Concurrent single-turn prompts.")] = 16,
    tokens: Annotated[int, typer.Option(min=1, help="max_tokens per request.")] = 48,
    conversations: Annotated[int, typer.Option(min=1, help="Parallel multi-turn conversations.")] = 4,
    turns: Annotated[int, typer.Option(min=1, help="Sequential turns per conversation.")] = 3,
    device: Annotated[str, typer.Option(help="Device both providers run on.")] = "cpu",
) -> None:
    """Inspect's hf provider vs teachwhy's embedded provider on the same requests: wall time and ratio."""
    timings = run_benchmark(
        prompts=prompts, tokens=tokens, conversations=conversations, turns=turns, device=device
    )
    by_pattern: dict[str, dict[str, Timing]] = {}
    for t in timings:
        by_pattern.setdefault(t.pattern, {})[t.provider] = t
    table = Table(title="embedded provider vs Inspect's hf provider (SmolLM2-135M, greedy)")
    for column in ("pattern", "hf s", "hf tok/s", "embedded s", "embedded tok/s", "speed-up (hf/embedded)"):
        table.add_column(column)
    for pattern, pair in by_pattern.items():
        hf, ours = pair["hf"], pair["embedded"]
        table.add_row(
            pattern,
            f"{hf.seconds:.2f}",
            f"{hf.tokens_per_s:.1f}",
            f"{ours.seconds:.2f}",
            f"{ours.tokens_per_s:.1f}",
            f"{hf.seconds / ours.seconds:.2f}×",
        )
    Console().print(table)
