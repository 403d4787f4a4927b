"""The embedded engine's prefix cache: a prompt that repeats a known start runs only its new tokens.

Answers must not change when the cache is on (greedy outputs with and without it are equal, on a tiny random
model and on the bundled model), and the cache must stay within its memory bound however much passes through.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from inspect_ai.model import ChatMessage, ChatMessageSystem, ChatMessageUser, GenerateConfig, Model, get_model
from transformers import AutoModelForCausalLM, AutoTokenizer

import pipeline_support
from teachwhy.models.batching import ContinuousBatcher, GenerationRequest, GenerationResult
from teachwhy.models.prefix_cache import PrefixCache
from teachwhy.models.sampling import SamplingSettings

HEADS, DIM, LAYERS = 2, 4, 3
TOKEN_BYTES = LAYERS * 2 * HEADS * DIM * 4  # keys and values, float32


def _key_values(length: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    return [
        (
            torch.randn(HEADS, length, DIM, generator=generator),
            torch.randn(HEADS, length, DIM, generator=generator),
        )
        for _ in range(LAYERS)
    ]


def test_a_prompt_gets_the_longest_stored_start_with_its_own_keys_and_values() -> None:
    cache = PrefixCache(max_bytes=10**6)
    first, second = [5, 6, 7, 8, 9], [5, 6, 1, 2]
    first_kv, second_kv = _key_values(5, seed=1), _key_values(4, seed=2)
    cache.insert(first, first_kv)
    cache.insert(second, second_kv)
    assert cache.tokens == 7  # the shared start is stored once
    assert cache.nbytes == 7 * TOKEN_BYTES

    found = cache.match([5, 6, 1, 2, 3], limit=5)
    assert found is not None and found.length == 4
    for (keys, values), (stored_keys, _), (new_keys, new_values) in zip(
        found.layers, first_kv, second_kv, strict=True
    ):
        assert keys.shape == (1, HEADS, 4, DIM)
        assert torch.equal(keys[0, :, :2], stored_keys[:, :2])  # the start came from the first sequence
        assert torch.equal(keys[0, :, 2:], new_keys[:, 2:])
        assert torch.equal(values[0, :, 2:], new_values[:, 2:])

    limited = cache.match(first, limit=len(first) - 1)  # a prompt always keeps one token to run
    assert limited is not None and limited.length == 4
    assert cache.match([6, 5], limit=2) is None
    assert cache.hits == 8


def test_the_memory_bound_holds_and_the_least_recently_used_sequence_goes_first() -> None:
    cache = PrefixCache(max_bytes=50 * TOKEN_BYTES)
    sequences = [[100 + i, *range(9)] for i in range(5)]  # 5 x 10 tokens fill the cache exactly
    for i, tokens in enumerate(sequences):
        cache.insert(tokens, _key_values(10, seed=i))
    assert cache.nbytes == 50 * TOKEN_BYTES
    assert cache.match(sequences[0], limit=10) is not None  # now the most recently used

    for i in range(5, 30):
        cache.insert([100 + i, *range(9)], _key_values(10, seed=i))
        assert cache.nbytes <= cache.max_bytes
        assert cache.nbytes == cache.tokens * TOKEN_BYTES

    assert cache.match(sequences[1], limit=10) is None
    assert cache.match([129, *range(9)], limit=10) is not None
    nothing = PrefixCache(max_bytes=0)
    nothing.insert([1, 2, 3], _key_values(3, seed=0))
    assert nothing.nbytes == 0 and nothing.match([1, 2, 3, 4], limit=4) is None


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, embedded_model_dir: Path) -> Path:
    return pipeline_support.build_tiny_target(
        tmp_path_factory.mktemp("tiny-llama"),
        embedded_model_dir,
        hidden=64,
        max_positions=512,
        initializer_range=0.5,
    )


SYSTEM = "You are the assistant of a small harbour office. Boats, tides and weather reports arrive all day."
OPENINGS = ["Which boat leaves first?", "Is the tide high at noon?", "Write a short note to the crew."]


async def _conversations(model: Model, turns: int, tokens: int, *, together: bool = True) -> list[list[str]]:
    config = GenerateConfig(temperature=0, max_tokens=tokens)

    async def conversation(opening: str) -> list[str]:
        messages: list[ChatMessage] = [ChatMessageSystem(content=SYSTEM), ChatMessageUser(content=opening)]
        replies = []
        for turn in range(turns):
            output = await model.generate(messages, config=config)
            assert output.stop_reason in ("stop", "max_tokens") and not output.error
            replies.append(output.completion)
            messages += [output.message, ChatMessageUser(content=f"Go on, and say more (part {turn}).")]
        return replies

    if together:
        return list(await asyncio.gather(*(conversation(o) for o in OPENINGS)))
    return [await conversation(o) for o in OPENINGS]


def _batcher(model: Model) -> Any:
    return model.api._live().batcher  # type: ignore[attr-defined]


@pytest.fixture
def with_and_without_cache(tiny_model_dir: Path) -> Iterator[tuple[Model, Model]]:
    on = get_model(f"embedded/{tiny_model_dir}", memoize=False, max_batch=8, prefix_cache_mb=16)
    off = get_model(f"embedded/{tiny_model_dir}", memoize=False, max_batch=8, prefix_cache_mb=0)
    yield on, off
    on.api.close()
    off.api.close()


def test_multi_turn_answers_are_the_same_with_the_prefix_cache(
    with_and_without_cache: tuple[Model, Model],
) -> None:
    on, off = with_and_without_cache
    assert _batcher(off).prefix_cache is None
    cached = asyncio.run(_conversations(on, turns=4, tokens=10))
    plain = asyncio.run(_conversations(off, turns=4, tokens=10))
    assert cached == plain
    assert len({reply for replies in plain for reply in replies}) > 4  # the conversations differ
    # later turns re-read their history from the cache: far fewer prompt tokens go through the model
    assert _batcher(on).prefilled_tokens < _batcher(off).prefilled_tokens / 3
    assert _batcher(on).prefix_cache.hits > 0


def test_the_batcher_keeps_its_prefix_cache_within_the_bound(tiny_model_dir: Path) -> None:
    # a bound of 60 tokens is far smaller than what passes through, so sequences are dropped all the time
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    config = model.config
    token_bytes = config.num_hidden_layers * 2 * config.num_key_value_heads * 16 * 4
    bound = 60 * token_bytes
    batchers = [
        ContinuousBatcher(
            model,
            tokenizer,
            max_batch=4,
            stop_token_ids={tokenizer.eos_token_id},
            context_window=512,
            prefix_cache_bytes=b,
        )
        for b in (bound, 0)
    ]
    prompts = [tokenizer(f"Report {i}: the tide tables for pier {i % 3}.")["input_ids"] for i in range(12)]
    try:
        results = []
        for batcher in batchers:
            outcomes: list[GenerationResult | BaseException] = []
            for prompt in [*prompts, *prompts]:  # the second round finds some starts, others dropped
                done = threading.Event()

                def deliver(
                    outcome: GenerationResult | BaseException,
                    done: threading.Event = done,
                    outcomes: list[GenerationResult | BaseException] = outcomes,
                ) -> None:
                    outcomes.append(outcome)
                    done.set()

                request = GenerationRequest(
                    prompt_ids=prompt, settings=SamplingSettings(max_tokens=8, temperature=0), deliver=deliver
                )
                batcher.submit(request)
                assert done.wait(60)
                if batcher.prefix_cache is not None:
                    assert batcher.prefix_cache.nbytes <= bound
            results.append([o.text if isinstance(o, GenerationResult) else repr(o) for o in outcomes])
        assert results[0] == results[1]
        cache = batchers[0].prefix_cache
        assert cache is not None and cache.hits > 0 and 0 < cache.nbytes <= bound
    finally:
        for batcher in batchers:
            batcher.close()


@pytest.mark.embedded
def test_the_bundled_model_answers_the_same_with_the_prefix_cache(embedded_model_dir: Path) -> None:
    on = get_model("embedded/SmolLM2-135M-Instruct", memoize=False, max_batch=4)
    off = get_model("embedded/SmolLM2-135M-Instruct", memoize=False, max_batch=4, prefix_cache_mb=0)
    try:
        # one conversation at a time, so only the cache differs between the two runs, never how rows were
        # batched (with a real model, a different batch can flip a near-tie)
        cached = asyncio.run(_conversations(on, turns=3, tokens=12, together=False))
        plain = asyncio.run(_conversations(off, turns=3, tokens=12, together=False))
        assert cached == plain
        assert _batcher(on).prefilled_tokens < _batcher(off).prefilled_tokens / 2
    finally:
        on.api.close()
        off.api.close()
