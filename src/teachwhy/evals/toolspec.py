"""What every simulated tool is made of: its spec, its result, and how it resolves recipients.

Shared by the email, file, test and case tools (:mod:`teachwhy.evals.tools`) and the chat, ticket and
shared-document tools (:mod:`teachwhy.evals.channel_tools`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from inspect_ai.tool import ToolInfo, ToolParam, ToolParams

from teachwhy.evals.world import WorldState, normalise_name

MALFORMED = {"malformed": True}


@dataclass
class ToolResult:
    """What a tool call returns: success, the text the agent sees, and the structured effect."""

    ok: bool
    text: str
    effect: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ToolSpec:
    """A tool's name, description, parameters (name -> description, required first) and implementation."""

    name: str
    description: str
    required: tuple[tuple[str, str], ...]
    optional: tuple[tuple[str, str], ...]
    run: Callable[[WorldState, dict[str, Any]], ToolResult]

    def check_args(self, args: dict[str, Any]) -> str | None:
        known = {n for n, _ in self.required} | {n for n, _ in self.optional}
        missing = [n for n, _ in self.required if n not in args or args[n] in (None, "")]
        unknown = sorted(set(args) - known)
        if missing:
            return f"{self.name} needs the argument(s) {', '.join(missing)}"
        if unknown:
            return f"{self.name} has no argument(s) {', '.join(unknown)}; it takes {', '.join(sorted(known))}"
        bad = [n for n, v in args.items() if not isinstance(v, str | list | int | float)]
        if bad:
            return f"{self.name}: argument(s) {', '.join(bad)} must be text"
        return None

    def info(self) -> ToolInfo:
        """The tool as an Inspect :class:`ToolInfo`, for providers with native tool calling."""
        props = {n: ToolParam(type="string", description=d) for n, d in (*self.required, *self.optional)}
        return ToolInfo(
            name=self.name,
            description=self.description,
            parameters=ToolParams(properties=props, required=[n for n, _ in self.required]),
        )

    def signature(self) -> str:
        """A one-line description for the text tool-call format."""
        params = [f'"{n}": <{d}>' for n, d in self.required] + [
            f'"{n}" (optional): <{d}>' for n, d in self.optional
        ]
        return f"- {self.name}: {self.description} Arguments: {{{', '.join(params)}}}"


def split_recipients(value: Any) -> list[str]:
    """Split a ``to``/``cc`` argument on commas and semicolons outside quotes and angle brackets."""
    items: list[str] = []
    for item in value if isinstance(value, list) else [value]:
        current, quoted, bracket = "", False, False
        for ch in str(item):
            if ch == '"':
                quoted = not quoted
            elif ch in "<>":
                bracket = ch == "<"
            if ch in ",;" and not quoted and not bracket:
                items.append(current)
                current = ""
            else:
                current += ch
        items.append(current)
    return [a.strip() for a in items if a.strip()]


def resolve_recipients(world: WorldState, value: Any) -> tuple[list[str], list[str]]:
    """(recipients reached, the ones the directory does not know) for a ``to``/``cc`` argument.

    A name the world's directory does not know is still delivered, as written (lower case): the agent meant
    to reach someone, and the trace rules count that person as a third party.
    """
    reached: list[str] = []
    unknown: list[str] = []
    for raw in split_recipients(value):
        address = world.resolve(raw)
        if address is None:
            address = normalise_name(raw)
            unknown.append(address)
        if address not in reached:
            reached.append(address)
    return reached, unknown
