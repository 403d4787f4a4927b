"""The auditor's loop: from a seed instruction, the auditor model builds and plays a scenario for the target.

The auditor acts only through six tools (described in ``prompts/auditor_tools.yaml``): ``set_system_prompt``,
``create_tool``, ``send_message``, ``send_tool_result``, ``rollback`` and ``end_audit``; each is an operation
of a :class:`~teachwhy.assessment.simulation.TargetSimulation`. With ``native`` tool calling the tools are
Inspect tool definitions; with ``text`` (models without native tools: Inspect's ``hf`` provider and
teachwhy's ``embedded``) they are described in the auditor's system prompt and called with
``<tool_call>`` blocks.

An audit ends when the auditor calls ``end_audit``, when it has used ``max_turns`` replies, when it replies
twice in a row without a tool call, when the target's context is full, or when a provider's content filter
stops the auditor. How it ended is recorded. A failed auditor or target call raises (inside Inspect the
sample becomes an error, counted, never scored).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

import yaml
from inspect_ai.model import (
    ChatMessage,
    ChatMessageAssistant,
    ChatMessageSystem,
    ChatMessageTool,
    ChatMessageUser,
    GenerateConfig,
    Model,
)
from inspect_ai.tool import ToolInfo, ToolParams

from teachwhy.assessment.library import Seed
from teachwhy.assessment.simulation import AREA, TargetSimulation
from teachwhy.errors import UserError
from teachwhy.evals.toolcalls import MalformedCall, parse_text_calls
from teachwhy.prompts import load_prompt
from teachwhy.resources import Stamp, resource_path, stamp

ToolFormat = Literal["auto", "native", "text"]
EndedBy = Literal[
    "end_audit", "turn_limit", "auditor_stopped", "target_context_full", "auditor_content_filter"
]
_TEXT_PROVIDERS = ("hf/", "embedded/")


class AuditorCallError(RuntimeError):
    """The auditor model returned an error instead of a reply."""


@dataclass
class AuditResult:
    """Everything one audit produced."""

    seed: Seed
    simulation: TargetSimulation
    auditor_messages: list[ChatMessage]
    auditor_turns: int
    malformed_calls: int
    ended_by: EndedBy
    auditor_format: Literal["native", "text"]

    @property
    def target_called(self) -> bool:
        return self.simulation.target_calls > 0

    def summary(self) -> dict[str, Any]:
        """JSON-serialisable facts for the Inspect store, the judge and the results file."""
        sim = self.simulation
        return {
            "seed_id": self.seed.id,
            "events": sim.events,
            "target_calls": sim.target_calls,
            "truncated_replies": sim.truncated_replies,
            "rollbacks": sim.rollbacks,
            "auditor_turns": self.auditor_turns,
            "malformed_calls": self.malformed_calls,
            "ended_by": self.ended_by,
            "auditor_format": self.auditor_format,
            "target_format": sim.tool_format,
        }


def choose_format(tool_format: ToolFormat, model: Model) -> Literal["native", "text"]:
    """``auto``: text for providers that drop tool definitions, native for the others."""
    if tool_format != "auto":
        return tool_format
    return "text" if str(model).startswith(_TEXT_PROVIDERS) else "native"


def auditor_tool_specs() -> dict[str, dict[str, Any]]:
    """The auditor's tools from ``assessment_prompts/auditor_tools.yaml`` (an overlay's, else the
    package's)."""
    return _tool_specs(stamp(resource_path("assessment_prompts", "auditor_tools.yaml")))


@cache
def _tool_specs(file: Stamp) -> dict[str, dict[str, Any]]:
    path = file[0]
    try:
        data = yaml.safe_load(path.read_text("utf-8"))
    except yaml.YAMLError as e:
        raise UserError(f"not valid YAML ({getattr(e, 'problem', e)})", file=path) from None
    if not isinstance(data, dict):
        raise UserError("must be a mapping of tool names to specs", file=path)
    return data


def auditor_tools() -> list[ToolInfo]:
    """The auditor's tools as Inspect tool definitions."""
    return [
        ToolInfo(
            name=name,
            description=spec["description"],
            parameters=ToolParams(
                properties=spec.get("parameters") or {}, required=spec.get("required") or []
            ),
        )
        for name, spec in auditor_tool_specs().items()
    ]


def _text_tool_list() -> str:
    lines = []
    for name, spec in auditor_tool_specs().items():
        args = ", ".join(
            f"{arg} ({p.get('type', 'any')}{'' if arg in spec.get('required', []) else ', optional'}): "
            f"{p.get('description', '')}"
            for arg, p in (spec.get("parameters") or {}).items()
        )
        lines.append(f"- {name}: {spec['description']}" + (f" Arguments: {args}" if args else ""))
    return "\n".join(lines)


def auditor_system_prompt(seed: Seed, *, max_turns: int, target: str, tool_format: str) -> str:
    """The auditor's system prompt for one seed (with the text tool format when needed)."""
    text = load_prompt("auditor", area=AREA).render(
        seed=seed.instruction, max_turns=max_turns, target_model=target
    )
    system = text.user
    if tool_format == "text":
        tools = load_prompt("auditor_text_tools", area=AREA).render(tool_list=_text_tool_list())
        system += "\n\n" + tools.user
    return system


async def run_audit(
    auditor: Model,
    target: Model,
    seed: Seed,
    *,
    max_turns: int = 12,
    auditor_format: ToolFormat = "auto",
    target_format: ToolFormat = "auto",
    auditor_config: GenerateConfig | None = None,
    target_config: GenerateConfig | None = None,
) -> AuditResult:
    """Run one audit of ``target`` from ``seed``.

    Args:
        auditor: the auditor model.
        target: the model under audit.
        seed: the seed instruction.
        max_turns: the most auditor replies.
        auditor_format: the auditor's tool-call format (``auto``, ``native`` or ``text``).
        target_format: the target's tool-call format for the tools the auditor creates.
        auditor_config: the auditor's generation settings.
        target_config: the target's generation settings.

    Raises:
        AuditorCallError: the auditor returned an error.
        TargetCallError: the target returned an error.
    """
    a_fmt = choose_format(auditor_format, auditor)
    sim = TargetSimulation(
        target, choose_format(target_format, target), config=target_config or GenerateConfig()
    )
    system = auditor_system_prompt(seed, max_turns=max_turns, target=str(target), tool_format=a_fmt)
    messages: list[ChatMessage] = [
        ChatMessageSystem(content=system),
        ChatMessageUser(content="Begin the audit."),
    ]
    tools = auditor_tools() if a_fmt == "native" else []
    malformed = 0
    nudged = False
    ended_by: EndedBy = "turn_limit"
    turns = 0
    for turn in range(1, max_turns + 1):
        turns = turn
        output = await auditor.generate(messages, tools=tools, config=auditor_config or GenerateConfig())
        if output.error:
            raise AuditorCallError(output.error)
        if output.stop_reason == "content_filter":
            ended_by = "auditor_content_filter"
            break
        if a_fmt == "native":
            messages.append(output.message)
            calls: list[tuple[str | None, str, dict[str, Any] | None, str | None]] = [
                (c.id, c.function, dict(c.arguments), c.parse_error) for c in output.message.tool_calls or []
            ]
        else:
            messages.append(ChatMessageAssistant(content=output.completion, model=output.model))
            calls = [
                (None, "", None, c.problem) if isinstance(c, MalformedCall) else (None, c.name, c.args, None)
                for c in parse_text_calls(output.completion)
            ]
        if not calls:
            if nudged:
                ended_by = "auditor_stopped"
                break
            nudged = True
            messages.append(ChatMessageUser(content=load_prompt("auditor_nudge", area=AREA).render().user))
            continue
        nudged = False
        results: list[str] = []
        for call_id, name, args, problem in calls:
            if problem is not None or args is None:
                malformed += 1
                result = f"error: malformed tool call ({problem})"
            elif sim.ended or sim.context_full:
                result = "error: the audit has ended"
            else:
                result = await sim.dispatch(name, args)
            results.append(result)
            if native_id := call_id:
                messages.append(ChatMessageTool(content=result, tool_call_id=native_id, function=name))
        if a_fmt == "text":
            lines = [f"[{n}] {r}" for n, r in enumerate(results, start=1)]
            messages.append(ChatMessageUser(content="Tool results:\n" + "\n".join(lines)))
        if sim.ended:
            ended_by = "end_audit"
            break
        if sim.context_full:
            ended_by = "target_context_full"
            break
    return AuditResult(seed, sim, messages, turns, malformed, ended_by, a_fmt)
