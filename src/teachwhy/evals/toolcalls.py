"""The text tool-call format, for models without native tool calling.

Some providers (Inspect's ``hf`` provider serving SmolLM2, many small local models) silently drop tool
definitions. For them the tools are described in the system prompt (``prompts/text_tools.md``) and a call is
one tagged JSON object, in the Hermes style many open tool-use models were trained on (and the one
:mod:`teachwhy.models.text_tools` renders)::

    <tool_call>{"name": "read_email", "arguments": {"email_id": "m1"}}</tool_call>

A reply may hold several calls. ``<tool>...</tool>`` tags and ``args`` for ``arguments`` are accepted too. A
tag that is not closed, or text between the tags that is not a JSON object with a string ``name`` and an
object of arguments, is a *malformed call*: the agent gets an error message back as the environment's result,
and the call is counted.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from teachwhy.evals.tools import TOOLS
from teachwhy.resources import Stamp, package_dir, resource_path, stamp

TEXT_TOOLS_FILE = package_dir("eval_prompts") / "text_tools.md"
_BLOCK = re.compile(r"<(tool_call|tool)>(.*?)</\1>", re.S)
_OPEN = re.compile(r"<tool(?:_call)?>")


@dataclass(frozen=True)
class TextCall:
    """A well-formed call."""

    name: str
    args: dict[str, Any]


@dataclass(frozen=True)
class MalformedCall:
    """A call that could not be parsed, with the reason."""

    raw: str
    problem: str


def parse_text_calls(text: str) -> list[TextCall | MalformedCall]:
    """Every tool call in a reply, in order; malformed ones are returned as :class:`MalformedCall`."""
    calls: list[TextCall | MalformedCall] = []
    end = 0
    for match in _BLOCK.finditer(text):
        calls.append(_parse_one(match.group(2)))
        end = match.end()
    opened = _OPEN.search(text, end)
    if opened:  # an opening tag that never closed, e.g. a reply cut off by max_tokens
        tag = opened.group(0)
        calls.append(MalformedCall(text[opened.start() :], f"the {tag} tag is not closed with </{tag[1:]}"))
    return calls


def _parse_one(raw: str) -> TextCall | MalformedCall:
    body = raw.strip()
    if body.startswith("```"):
        body = body.strip("`").removeprefix("json").strip()
    try:
        data = json.loads(body)
    except json.JSONDecodeError as e:
        return MalformedCall(raw, f"not valid JSON ({e.msg} at character {e.pos})")
    if not isinstance(data, dict):
        return MalformedCall(raw, "the call must be a JSON object")
    name = data.get("name")
    args = data.get("arguments", data.get("args", {}))
    if not isinstance(name, str) or not name:
        return MalformedCall(raw, 'the call needs a string "name"')
    if not isinstance(args, dict):
        return MalformedCall(raw, '"arguments" must be a JSON object')
    return TextCall(name, args)


def _instructions_template() -> str:
    return _template(stamp(resource_path("eval_prompts", TEXT_TOOLS_FILE.name)))


@cache
def _template(file: Stamp) -> str:
    text = file[0].read_text(encoding="utf-8")
    return text.split("---", 2)[2].strip() if text.startswith("---") else text


# example values for the example call (any other argument is shown as "...")
_EXAMPLE_VALUES = {
    "email_id": "m1",
    "channel": "#general",
    "ticket_id": "T-1",
    "doc_id": "notes",
    "path": "a.txt",
}


def example_call(tools: list[str]) -> str:
    """One call of a tool this world offers (a reading tool when there is one), for the instructions."""
    offered = [t for t in tools if t in TOOLS and t != "done"] or ["done"]
    name = next((t for t in offered if t.startswith("read_")), offered[0])
    args = {n: _EXAMPLE_VALUES.get(n, "...") for n, _ in TOOLS[name].required}
    return f"<tool_call>{json.dumps({'name': name, 'arguments': args})}</tool_call>"


def text_tool_instructions(tools: list[str]) -> str:
    """The text-format instructions for the given tools (and an example call of one of them), appended to
    the system prompt."""
    listing = "\n".join(TOOLS[t].signature() for t in tools if t in TOOLS)
    return _instructions_template().replace("{tool_list}", listing).replace("{example}", example_call(tools))
