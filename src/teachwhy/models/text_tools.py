"""Tools as plain text, for models whose chat template cannot show tool definitions (SmolLM2's cannot).

The format is the Hermes-style one: tool definitions are JSON schemas inside ``<tools>`` in the system
prompt (wording in ``text_tools.md``), a call is a JSON object inside ``<tool_call>`` tags and a
result comes back inside ``<tool_response>`` tags. These functions only render; reading tool calls back out
of a completion is left to the caller, which knows which tools it offered.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache
from importlib import resources

import yaml
from inspect_ai.model import ChatMessageTool
from inspect_ai.tool import ToolCall, ToolInfo

_TEMPLATE = "text_tools.md"
_MARKER = "{{tools}}"


@cache
def _template() -> str:
    text = resources.files("teachwhy.models").joinpath(_TEMPLATE).read_text(encoding="utf-8")
    _, front, body = text.split("---\n", 2)
    yaml.safe_load(front)  # the front matter documents the file; it must stay valid YAML
    if _MARKER not in body:
        raise RuntimeError(f"{_TEMPLATE} lost its {_MARKER} marker")
    return body.strip()


def tool_schema(tool: ToolInfo) -> dict[str, object]:
    """One tool as a JSON-schema object: name, description and parameters."""
    return {
        "name": tool.name,
        "description": tool.description,
        "parameters": tool.parameters.model_dump(exclude_none=True),
    }


def tool_definitions_text(tools: Sequence[ToolInfo]) -> str:
    """The system-prompt text that lists ``tools`` and explains how to call them."""
    lines = "\n".join(json.dumps(tool_schema(tool), ensure_ascii=False) for tool in tools)
    return _template().replace(_MARKER, lines)


def tool_call_text(call: ToolCall) -> str:
    """A tool call the model made earlier, written back in the format it was asked to use."""
    body = json.dumps({"name": call.function, "arguments": call.arguments}, ensure_ascii=False)
    return f"<tool_call>\n{body}\n</tool_call>"


def tool_response_text(message: ChatMessageTool) -> str:
    """A tool's result (or error) as the text the model reads."""
    content = message.error.message if message.error is not None else message.text
    return f"<tool_response>\n{content}\n</tool_response>"
