"""`teachwhy bench embedded`'s request patterns and its note when llama.cpp is not installed."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from inspect_ai.model import get_model
from transformers import AutoTokenizer

import pipeline_support
from teachwhy.models.bench import LLAMA_CPP_MISSING, _agent, _llama_cpp_single, agent_world


def test_the_agent_world_is_the_asked_number_of_tokens(embedded_model_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(embedded_model_dir)
    world = agent_world(tokenizer, 300)
    assert abs(len(tokenizer(world, add_special_tokens=False)["input_ids"]) - 300) <= 3
    long = agent_world(tokenizer, 1500)  # the eval scenarios' own text, from the front matter of the first
    assert long.startswith("---\nid: ") and "\nfamily: " in long and "\nsplit: " in long
    with pytest.raises(ValueError, match="fewer than"):
        agent_world(tokenizer, 10**6)


def test_agent_episodes_reuse_the_shared_world(tmp_path: Path, embedded_model_dir: Path) -> None:
    folder = pipeline_support.build_tiny_target(
        tmp_path / "tiny", embedded_model_dir, hidden=64, max_positions=1024
    )
    world = agent_world(AutoTokenizer.from_pretrained(folder), 200)
    model = get_model(f"embedded/{folder}", memoize=False, max_batch=4)
    try:
        requests, produced = asyncio.run(_agent(model, world, episodes=3, turns=2, tokens=4))
        batcher = model.api._live().batcher  # type: ignore[attr-defined]
    finally:
        model.api.close()
    assert requests == 6 and 0 < produced <= 24
    # the world is run once, not once per episode and turn
    assert batcher.prefilled_tokens < 2 * 200 + 6 * 60


def test_without_llama_cpp_the_bench_says_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # makes the import fail
    assert _llama_cpp_single(tmp_path / "model.gguf", 1, 1, threads=1) == LLAMA_CPP_MISSING


def test_an_unknown_weights_type_is_refused_before_anything_loads() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "teachwhy", "bench", "embedded", "--dtype", "int4"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: bench embedded --dtype: must be one of float32, bfloat16, float16, int8, got 'int4'"
    ]
