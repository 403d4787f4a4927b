"""Scripted models for the training-data II tests: answers chosen from the prompt (no tests here)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from inspect_ai.model import GenerateConfig, Model, ModelOutput, get_model

from scripted import MOCK, reply
from teachwhy.config import ExperimentConfig

Respond = Callable[[list[Any], GenerateConfig], ModelOutput | str]


def prompt_model(respond: Respond) -> Model:
    """A mockllm model answering ``respond(messages, config)`` (strings become replies with usage)."""

    def script(
        messages: list[Any], tools: list[Any], tool_choice: Any, config: GenerateConfig
    ) -> ModelOutput:
        out = respond(messages, config)
        return reply(out) if isinstance(out, str) else out

    return get_model(MOCK, custom_outputs=script, memoize=False)


def words(tag: str, n: int) -> str:
    """``n`` distinct words that share no 4-gram with another tag's words."""
    return " ".join(f"{tag}w{i}" for i in range(n))


def quiet_config() -> ExperimentConfig:
    """Defaults with Inspect's cache off, so tests never share answers through the user's cache."""
    config = ExperimentConfig()
    config.generation.cache = False
    config.generation.max_connections = 4
    return config
