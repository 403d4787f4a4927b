"""`teachwhy bench embedded`: the ``embedded`` provider against Inspect's ``hf`` provider and llama.cpp.

The providers serve the same SmolLM2 weights on the same device, greedily, with the same requests:

- *concurrent*: N single-turn prompts sent at once (the shape of data generation);
- *agent*: E episodes in parallel, each T sequential turns over one shared world of about W tokens in the
  system prompt, every turn waiting for the previous reply and repeating the whole history (the shape of a
  honeypot eval); the world is the eval scenarios' own text;
- *single stream*: the first S of those prompts one after another, for tokens/s of one stream; here llama.cpp
  (``llama-cpp-python``, installed only for this benchmark) runs the GGUF the embedded model is made from.

Model loading and a warm-up request are excluded from the timings. Each ratio is the other's time divided by
the embedded provider's time (for tokens/s, embedded divided by llama.cpp), all measured in this one run.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from functools import partial
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from teachwhy.errors import UserError

if TYPE_CHECKING:
    from inspect_ai.model import Model

TOPICS = (
    "rivers", "volcanoes", "honeybees", "lighthouses", "glaciers", "libraries", "bridges", "comets",
    "forests", "deserts", "harbours", "bicycles", "windmills", "coral reefs", "clocks", "maps",
)  # fmt: skip
LLAMA_CPP_MISSING = (
    "llama.cpp was not measured: llama-cpp-python is not installed (pip install llama-cpp-python; "
    "it compiles for several minutes and is not a teachwhy dependency)"
)


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


def agent_world(tokenizer: Any, tokens: int) -> str:
    """About ``tokens`` tokens of the honeypot scenarios' text, as one world for every agent episode."""
    folder = resources.files("teachwhy") / "evals" / "scenarios"
    files = [f for d in folder.iterdir() if d.is_dir() for f in d.iterdir() if f.name.endswith(".md")]
    texts = [f.read_text(encoding="utf-8") for f in sorted(files, key=lambda f: f.name)]
    ids = tokenizer("\n\n".join(texts), add_special_tokens=False)["input_ids"]
    if len(ids) < tokens:
        raise ValueError(f"the scenarios hold only {len(ids)} tokens, fewer than the {tokens} asked for")
    return str(tokenizer.decode(ids[:tokens]))


async def _concurrent(model: Model, prompts: int, tokens: int) -> tuple[int, int]:
    from inspect_ai.model import GenerateConfig

    config = GenerateConfig(max_tokens=tokens, temperature=0.0)
    outputs = await asyncio.gather(*(model.generate(_prompt(i), config=config) for i in range(prompts)))
    return len(outputs), sum(o.usage.output_tokens if o.usage else 0 for o in outputs)


async def _one_by_one(model: Model, prompts: int, tokens: int) -> tuple[int, int]:
    from inspect_ai.model import GenerateConfig

    config = GenerateConfig(max_tokens=tokens, temperature=0.0)
    produced = 0
    for i in range(prompts):
        output = await model.generate(_prompt(i), config=config)
        produced += output.usage.output_tokens if output.usage else 0
    return prompts, produced


async def _agent(model: Model, world: str, episodes: int, turns: int, tokens: int) -> tuple[int, int]:
    from inspect_ai.model import ChatMessage, ChatMessageSystem, ChatMessageUser, GenerateConfig

    config = GenerateConfig(max_tokens=tokens, temperature=0.0)

    async def episode(e: int) -> int:
        messages: list[ChatMessage] = [
            ChatMessageSystem(content=f"You are the agent in this world.\n\n{world}"),
            ChatMessageUser(content=f"Episode {e}: begin with the message about {TOPICS[e % len(TOPICS)]}."),
        ]
        produced = 0
        for turn in range(turns):
            output = await model.generate(messages, config=config)
            if output.error:
                raise RuntimeError(f"agent episode {e}, turn {turn}: {output.error}")
            produced += output.usage.output_tokens if output.usage else 0
            messages += [output.message, ChatMessageUser(content=f"Tool result {turn}: done. Next action?")]
        return produced

    produced = await asyncio.gather(*(episode(e) for e in range(episodes)))
    return episodes * turns, sum(produced)


def _llama_cpp_single(gguf: Path, prompts: int, tokens: int, threads: int) -> Timing | str:
    """llama.cpp on the GGUF file, one prompt after another; a note instead when it is not installed."""
    try:
        from llama_cpp import Llama
    except ImportError:
        return LLAMA_CPP_MISSING
    llm = Llama(model_path=str(gguf), n_ctx=2048, n_threads=threads, n_batch=512, seed=0, verbose=False)
    llm.create_chat_completion([{"role": "user", "content": "Hello."}], max_tokens=2, temperature=0.0)
    produced, start = 0, time.perf_counter()
    for i in range(prompts):
        reply: Any = llm.create_chat_completion(
            [{"role": "user", "content": _prompt(i)}], max_tokens=tokens, temperature=0.0
        )
        produced += int(reply["usage"]["completion_tokens"])
    seconds = time.perf_counter() - start
    llm.close()
    return Timing(f"single stream {prompts}×{tokens}", "llama.cpp", seconds, prompts, produced)


def hf_dtype(dtype: str) -> str:
    """The type ``hf`` runs beside the embedded provider's ``dtype``: the same, or float32 for int8."""
    return "float32" if dtype == "int8" else dtype


def run_benchmark(
    *,
    prompts: int = 16,
    tokens: int = 48,
    episodes: int = 16,
    turns: int = 6,
    world_tokens: int = 1500,
    stream_prompts: int = 4,
    device: str = "cpu",
    dtype: str = "float32",
) -> tuple[list[Timing], list[str]]:
    """Time every provider on every pattern; returns the timings and notes on what was not measured.

    ``dtype`` is the weights' type for ``hf`` and the embedded provider alike, except ``int8``, which ``hf``
    has no equivalent of: it then runs float32, as it does by default. llama.cpp always runs the GGUF.
    """
    import torch
    from inspect_ai.model import GenerateConfig, get_model
    from transformers import AutoTokenizer

    from teachwhy.models.embedded import gguf_path, materialise_embedded

    folder = materialise_embedded()
    world = agent_world(AutoTokenizer.from_pretrained(folder), world_tokens)
    max_batch = max(prompts, episodes)
    concurrent = f"concurrent {prompts}×{tokens}"
    single = f"single stream {stream_prompts}×{tokens}"
    agent = f"agent {episodes} episodes×{turns} turns×{tokens}, {world_tokens}-token world"
    Pattern = tuple[str, Callable[["Model"], Coroutine[Any, Any, tuple[int, int]]]]
    shared: list[Pattern] = [
        (concurrent, partial(_concurrent, prompts=prompts, tokens=tokens)),
        (agent, partial(_agent, world=world, episodes=episodes, turns=turns, tokens=tokens)),
    ]
    providers: list[tuple[str, str, dict[str, Any], list[Pattern]]] = [
        (
            "hf",
            "hf/local",
            {
                "model_path": str(folder),
                "device": device,
                "do_sample": False,
                "dtype": getattr(torch, hf_dtype(dtype)),
            },
            shared,
        ),
        (
            "embedded",
            f"embedded/{folder}",
            {"device": device, "max_batch": max_batch, "dtype": dtype},
            [*shared, (single, partial(_one_by_one, prompts=stream_prompts, tokens=tokens))],
        ),
    ]
    timings: list[Timing] = []
    for label, name, args, patterns in providers:
        model = get_model(name, config=GenerateConfig(max_connections=max_batch), memoize=False, **args)
        try:
            asyncio.run(model.generate("Hello.", config=GenerateConfig(max_tokens=2, temperature=0.0)))
            for pattern, run in patterns:
                start = time.perf_counter()
                requests, produced = asyncio.run(run(model))
                timings.append(Timing(pattern, label, time.perf_counter() - start, requests, produced))
        finally:
            model.api.close()
    notes: list[str] = []
    measured = _llama_cpp_single(gguf_path(), stream_prompts, tokens, threads=torch.get_num_threads())
    if isinstance(measured, str):
        notes.append(measured)
    else:
        timings.append(measured)
    return timings, notes


def bench_embedded(
    prompts: Annotated[int, typer.Option(min=1, help="Concurrent single-turn prompts.")] = 16,
    tokens: Annotated[int, typer.Option(min=1, help="max_tokens per request.")] = 48,
    episodes: Annotated[int, typer.Option(min=1, help="Parallel agent episodes.")] = 16,
    turns: Annotated[int, typer.Option(min=1, help="Sequential turns per agent episode.")] = 6,
    world_tokens: Annotated[int, typer.Option(min=1, help="Tokens of world in the system prompt.")] = 1500,
    stream_prompts: Annotated[int, typer.Option(min=1, help="Prompts sent one by one (single stream).")] = 4,
    device: Annotated[str, typer.Option(help="Device the providers run on.")] = "cpu",
    threads: Annotated[
        int | None, typer.Option(min=1, help="CPU threads for torch and llama.cpp alike (default: torch's).")
    ] = None,
    dtype: Annotated[
        str,
        typer.Option(
            help="Weights' type: float32, bfloat16, float16 (hf and embedded alike) or int8 (embedded only; "
            "hf runs float32)."
        ),
    ] = "float32",
) -> None:
    """The embedded provider vs Inspect's hf provider and llama.cpp on the same requests: time and ratios."""
    from teachwhy.models.loaded import DTYPES

    if dtype not in DTYPES:
        raise UserError(f"must be one of {', '.join(DTYPES)}, got '{dtype}'", key="bench embedded --dtype")
    import torch

    if threads is not None:  # on a busy machine, fewer threads than cores spares them waiting on each other
        torch.set_num_threads(threads)

    load_before = os.getloadavg()[0]
    timings, notes = run_benchmark(
        prompts=prompts,
        tokens=tokens,
        episodes=episodes,
        turns=turns,
        world_tokens=world_tokens,
        stream_prompts=stream_prompts,
        device=device,
        dtype=dtype,
    )
    by_pattern: dict[str, dict[str, Timing]] = {}
    for t in timings:
        by_pattern.setdefault(t.pattern, {})[t.provider] = t
    table = Table(
        title="embedded provider vs Inspect's hf provider and llama.cpp (SmolLM2-135M, greedy, "
        f"embedded {dtype}, hf {hf_dtype(dtype)}; llama.cpp: the Q4_1 GGUF)"
    )
    for column in ("pattern", "provider", "seconds", "output tok/s", "embedded speed-up"):
        table.add_column(column)
    for pattern, by_provider in by_pattern.items():
        ours = by_provider.get("embedded")
        for provider, t in by_provider.items():
            if provider == "embedded" or ours is None:
                ratio = ""
            elif provider == "llama.cpp":
                ratio = f"{ours.tokens_per_s / t.tokens_per_s:.2f}× (tok/s)"
            else:
                ratio = f"{t.seconds / ours.seconds:.2f}× (time)"
            table.add_row(pattern, provider, f"{t.seconds:.2f}", f"{t.tokens_per_s:.1f}", ratio)
    console = Console()
    console.print(table)
    concurrent = by_pattern.get(f"concurrent {prompts}×{tokens}", {}).get("embedded")
    if concurrent is not None:
        per_stream = concurrent.tokens_per_s / prompts
        console.print(f"embedded per-stream tok/s while serving {prompts} at once: {per_stream:.1f}")
    for note in notes:
        console.print(f"[yellow]note:[/yellow] {note}")
    load_after = os.getloadavg()[0]
    console.print(
        f"torch threads {torch.get_num_threads()}, "
        f"load average (1 min) {load_before:.1f} before, {load_after:.1f} after"
    )
