"""The target's side of an audit: its system prompt, its simulated tools, its conversation and its branches.

The auditor drives a :class:`TargetSimulation` through six operations (the auditor's tools): set the system
prompt, create a tool, send a message, return a tool result, roll back, end. Nothing the target calls is
executed; every tool result is text the auditor wrote. Every operation is recorded as an event, in order,
rolled-back branches included, so the judge sees everything that happened.

The target's tool calls are native (Inspect tool definitions, results as tool messages) or, for models
without native tool calling, text: the tools are described in its system prompt and a call is a
``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` block (parsed as in the honeypot agents).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

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
from pydantic import ValidationError

from teachwhy.evals.toolcalls import MalformedCall, parse_text_calls
from teachwhy.prompts import load_prompt
from teachwhy.resources import package_dir

PROMPTS = package_dir("assessment_prompts")
AREA = "assessment_prompts"  # the resource area of these prompts (teachwhy.resources)
TRUNCATED = ("max_tokens", "model_length")


class TargetCallError(RuntimeError):
    """The target model returned an error instead of a reply."""


@dataclass
class TargetSimulation:
    """The target's conversation as the auditor builds it."""

    target: Model
    tool_format: Literal["native", "text"]
    config: GenerateConfig = field(default_factory=GenerateConfig)
    system: str | None = None
    tools: dict[str, ToolInfo] = field(default_factory=dict)
    messages: list[ChatMessage] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    target_calls: int = 0
    truncated_replies: int = 0
    rollbacks: int = 0
    ended: bool = False
    context_full: bool = False
    _calls: list[dict[str, str]] = field(default_factory=list)  # per message: tool-call id -> function
    _buffer: dict[str, str] = field(default_factory=dict)  # text format: results waiting for the others

    # -- the auditor's operations ------------------------------------------------------------------------

    def set_system_prompt(self, system_message: str) -> str:
        if not system_message.strip():
            return "error: the system prompt is empty"
        self.system = system_message
        self.messages, self._calls, self._buffer = [], [], {}
        self.events.append({"type": "system_prompt", "content": system_message})
        return "The target's system prompt is set; its conversation starts empty."

    def create_tool(self, name: str, description: str, parameters: Any = None) -> str:
        if not name or not name.replace("_", "").isalnum():
            return "error: a tool name must be letters, digits and underscores"
        schema = dict(parameters) if isinstance(parameters, dict) else {}
        if schema and "properties" not in schema and "type" not in schema:
            schema = {"properties": schema}  # a bare map of argument name -> schema
        schema.setdefault("properties", {})
        try:
            params = ToolParams.model_validate({**schema, "type": "object"})
        except ValidationError as e:
            return f"error: the parameters are not a JSON schema object ({e.errors()[0]['msg']})"
        self.tools[name] = ToolInfo(name=name, description=description or name, parameters=params)
        self.events.append(
            {
                "type": "tool_created",
                "name": name,
                "description": description,
                "parameters": params.model_dump(),
            }
        )
        return f"The target now has the tool '{name}'."

    async def send_message(self, message: str) -> str:
        if self.system is None:
            return "error: call set_system_prompt first"
        pending = self.pending()
        if pending:
            return f"error: answer the target's pending tool calls first ({', '.join(pending)})"
        self._append(ChatMessageUser(content=message), {})
        self.events.append({"type": "user_message", "index": len(self.messages), "content": message})
        return await self._reply()

    async def send_tool_result(self, tool_call_id: str, result: str) -> str:
        pending = self.pending()
        if tool_call_id not in pending:
            listed = ", ".join(pending) or "none"
            return f"error: '{tool_call_id}' is not a pending tool call (pending: {listed})"
        function = pending[tool_call_id]
        self.events.append(
            {"type": "tool_result", "tool_call_id": tool_call_id, "function": function, "content": result}
        )
        if self.tool_format == "native":
            self._append(ChatMessageTool(content=result, tool_call_id=tool_call_id, function=function), {})
        else:
            self._buffer[tool_call_id] = result
        if self.pending():
            return f"Result recorded; still pending: {', '.join(self.pending())}"
        if self.tool_format == "text":
            order = list(self._calls[-1])
            lines = [f"[{i}] {self._calls[-1][i]}: {self._buffer[i]}" for i in order if i in self._buffer]
            self._buffer = {}
            self._append(ChatMessageUser(content="Tool results:\n" + "\n".join(lines)), {})
        return await self._reply()

    def rollback(self, index: int) -> str:
        if not isinstance(index, int) or index < 0 or index > len(self.messages):
            return f"error: index must be between 0 and {len(self.messages)}"
        del self.messages[index:]
        del self._calls[index:]
        self._buffer = {}
        self.rollbacks += 1
        self.events.append({"type": "rollback", "index": index})
        return f"The target's conversation now ends at message [{index}]."

    def end(self) -> str:
        self.ended = True
        self.events.append({"type": "end_audit"})
        return "The audit has ended."

    async def dispatch(self, name: str, args: dict[str, Any]) -> str:
        """Run one auditor tool call; a bad call returns an error message for the auditor, never raises."""
        try:
            if name == "set_system_prompt":
                return self.set_system_prompt(str(args["system_message"]))
            if name == "create_tool":
                return self.create_tool(
                    str(args["name"]), str(args.get("description", "")), args.get("parameters")
                )
            if name == "send_message":
                return await self.send_message(str(args["message"]))
            if name == "send_tool_result":
                return await self.send_tool_result(str(args["tool_call_id"]), str(args["result"]))
            if name == "rollback":
                return self.rollback(int(args["index"]))
            if name == "end_audit":
                return self.end()
        except KeyError as e:
            return f"error: {name} needs the argument {e.args[0]!r}"
        except (TypeError, ValueError) as e:
            return f"error: bad arguments for {name} ({e})"
        return f"error: there is no tool named '{name}'"

    # -- state ---------------------------------------------------------------------------------------------

    def pending(self) -> dict[str, str]:
        """The target's tool calls still waiting for a result (id -> function)."""
        last = self._last_assistant()
        if last is None or any(isinstance(m, ChatMessageUser) for m in self.messages[last + 1 :]):
            return {}
        answered = {m.tool_call_id for m in self.messages[last + 1 :] if isinstance(m, ChatMessageTool)}
        return {i: f for i, f in self._calls[last].items() if i not in answered | set(self._buffer)}

    def _last_assistant(self) -> int | None:
        return next(
            (
                i
                for i in range(len(self.messages) - 1, -1, -1)
                if isinstance(self.messages[i], ChatMessageAssistant)
            ),
            None,
        )

    def _append(self, message: ChatMessage, calls: dict[str, str]) -> None:
        self.messages.append(message)
        self._calls.append(calls)

    def conversation(self) -> list[ChatMessage]:
        """The target's current branch as it sees it (system prompt first)."""
        return [ChatMessageSystem(content=self._system_text()), *self.messages]

    def _system_text(self) -> str:
        system = self.system or ""
        if self.tool_format == "text" and self.tools:
            listing = "\n".join(
                f"- {t.name}: {t.description}\n  arguments (JSON schema): "
                f"{json.dumps(t.parameters.model_dump(exclude_none=True))}"
                for t in self.tools.values()
            )
            system += "\n\n" + load_prompt("target_text_tools", area=AREA).render(tool_list=listing).user
        return system

    # -- the target's reply ---------------------------------------------------------------------------------

    async def _reply(self) -> str:
        tools = list(self.tools.values()) if self.tool_format == "native" else []
        output = await self.target.generate(self.conversation(), tools=tools, config=self.config)
        if output.error:
            raise TargetCallError(output.error)
        self.target_calls += 1
        stop = output.stop_reason
        calls: dict[str, str] = {}
        notes: list[str] = []
        if self.tool_format == "native":
            message = output.message
            for call in message.tool_calls or []:
                calls[call.id] = call.function
                if call.parse_error:
                    notes.append(f"the call {call.id} has malformed arguments: {call.parse_error}")
            shown = [(c.id, c.function, c.arguments) for c in message.tool_calls or []]
        else:
            text = output.completion
            message = ChatMessageAssistant(content=text, model=output.model)
            shown = []
            for n, parsed in enumerate(parse_text_calls(text), start=1):
                call_id = f"call_{self.target_calls}_{n}"
                if isinstance(parsed, MalformedCall):
                    notes.append(f"a malformed tool call: {parsed.problem}")
                    continue
                calls[call_id] = parsed.name
                shown.append((call_id, parsed.name, parsed.args))
        self._append(message, calls)
        index = len(self.messages)
        if stop in TRUNCATED:
            self.truncated_replies += 1
            notes.append(f"the reply was cut off ({stop})")
        if stop == "model_length":
            self.context_full = True
            notes.append("the target's context window is full: the audit ends here")
        if stop == "content_filter":
            notes.append("the provider's content filter stopped the reply")
        self.events.append(
            {
                "type": "target_reply",
                "index": index,
                "content": message.text,
                "tool_calls": [{"id": i, "function": f, "arguments": a} for i, f, a in shown],
                "stop_reason": stop,
            }
        )
        lines = [f"Target message [{index}] (stop reason: {stop}):", message.text or "(no text)"]
        lines += [f"Tool call {i}: {f}({json.dumps(a, ensure_ascii=False)})" for i, f, a in shown]
        lines += [f"Note: {n}" for n in notes]
        return "\n".join(lines)
