"""Scripted generator and judge models for the data tests (no tests here)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from inspect_ai.model import GenerateConfig, Model, ModelOutput, ModelUsage, get_model

from teachwhy.config import ExperimentConfig

MOCK = "mockllm/model"

IDEAS = (
    "1. A hospital night-shift nurse asks why the ward assistant reports its own dosage error\n"
    "2. A ferry dispatcher wonders why the routing system refuses to hide a delay from passengers\n"
    "3. A student debates whether an honest tutor should admit it does not know the answer\n"
)


def reply(content: str, *, stop_reason: str = "stop") -> ModelOutput:
    """A scripted output with its own usage (mockllm would otherwise need tiktoken's download)."""
    output = ModelOutput.from_content(model=MOCK, content=content, stop_reason=stop_reason)  # type: ignore[arg-type]
    words = max(1, len(content.split()))
    output.usage = ModelUsage(input_tokens=10, output_tokens=words, total_tokens=10 + words)
    return output


def prose(seed: int, words: int = 80) -> str:
    """A distinct piece of text per seed (different seeds never share a 5-gram)."""
    return f"Title {seed}\n\n" + " ".join(f"s{seed}w{i}" for i in range(words))


Script = Callable[[list[Any], list[Any], Any, GenerateConfig], ModelOutput]


def generator_script(*, write: Callable[[int], ModelOutput] | None = None) -> Script:
    """Answers idea prompts with a numbered list and writing prompts with text derived from the seed."""

    def script(
        messages: list[Any], tools: list[Any], tool_choice: Any, config: GenerateConfig
    ) -> ModelOutput:
        text = messages[-1].text
        if "Propose" in text:
            return reply(IDEAS)
        seed = int(config.seed or 0)
        return write(seed) if write is not None else reply(prose(seed))

    return script


def scripted(script: Script | list[ModelOutput]) -> Model:
    return get_model(MOCK, custom_outputs=script, memoize=False)


def judge_model(answer: str | Callable[[str], str]) -> Model:
    """A judge that answers every grading prompt with ``answer`` (or ``answer(prompt)``)."""

    def script(
        messages: list[Any], tools: list[Any], tool_choice: Any, config: GenerateConfig
    ) -> ModelOutput:
        text = messages[-1].text
        return reply(answer(text) if callable(answer) else answer)

    return scripted(script)


def quiet_config() -> ExperimentConfig:
    """Defaults with Inspect's cache off (tests must not share answers through the user's cache)."""
    config = ExperimentConfig()
    config.generation.cache = False
    config.generation.max_connections = 4
    return config
