"""Scripted model outputs for Inspect's ``mockllm/model``.

mockllm fills in missing token usage by counting with tiktoken's o200k_base encoding, which tiktoken downloads
on first use; offline that download fails. Every scripted output here therefore carries its own usage.
"""

from __future__ import annotations

from typing import Any

from inspect_ai.model import Model, ModelOutput, ModelUsage, get_model

MOCK = "mockllm/model"


def reply(content: str, *, stop_reason: str = "stop") -> ModelOutput:
    """A scripted assistant message (``stop_reason="max_tokens"`` scripts a truncated generation)."""
    output = ModelOutput.from_content(model=MOCK, content=content, stop_reason=stop_reason)  # type: ignore[arg-type]
    words = max(1, len(content.split()))
    output.usage = ModelUsage(input_tokens=10, output_tokens=words, total_tokens=10 + words)
    return output


def tool_call(name: str, arguments: dict[str, Any], *, content: str = "") -> ModelOutput:
    """A scripted native tool call."""
    output = ModelOutput.for_tool_call(model=MOCK, tool_name=name, tool_arguments=arguments, content=content)
    output.usage = ModelUsage(input_tokens=10, output_tokens=5, total_tokens=15)
    return output


def scripted_model(outputs: list[ModelOutput | str]) -> Model:
    """A fresh mockllm model that answers with ``outputs`` in order (strings become :func:`reply`)."""
    scripted = [reply(o) if isinstance(o, str) else o for o in outputs]
    return get_model(MOCK, custom_outputs=scripted, memoize=False)
