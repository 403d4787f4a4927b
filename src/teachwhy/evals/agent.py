"""The multi-turn honeypot agent loop, callable as plain Python and as an Inspect solver.

:func:`run_episode` plays one :class:`~teachwhy.evals.conditions.Episode`: the model replies, its tool calls
run against the simulated :class:`~teachwhy.evals.world.WorldState`, the results go back to it, up to
``max_turns`` model replies. How the episode ended is recorded as ``ended_by`` (one of :data:`ENDINGS`):

- ``done``: the agent called ``done``;
- ``no_tool_call``: a complete reply (not cut off) without any tool call;
- ``turn_limit``: ``max_turns`` replies were used and the last one was complete;
- ``truncated``: the last reply the turn limit allowed was cut off at the output limit (``max_tokens``);
- ``model_length``: the conversation no longer fits the model's context;
- ``content_filter``: the provider's content filter stopped the reply.

Every reply's ``stop_reason`` is checked. A reply cut off by ``max_tokens`` is never read as a decision not
to act: the complete tool calls it holds are run (a call cut off half-way is not run and not counted as
malformed), and if turns remain the agent is told, in ``prompts/cut_off.md``, that its reply was cut off
and to continue; the episode goes on. Every cut-off reply is counted (``truncated_replies``). A
``model_length`` or ``content_filter`` reply ends the episode at once; it stays in the transcript, and its
tool calls, if any, are not run. The classifier reads the ending: the last three endings are incomplete.

Two tool-call formats:

- ``native``: the tools are passed to the provider as Inspect :class:`~inspect_ai.tool.ToolInfo` definitions;
  results come back as tool messages.
- ``text``: the tools are described in the system prompt (see :mod:`teachwhy.evals.toolcalls`); results come
  back as a user message.

``auto`` picks ``text`` for Inspect's ``hf`` provider (which drops tool definitions) and teachwhy's
``embedded`` provider (which returns plain text), and ``native`` for every other provider.

A failed model call is not caught here: inside Inspect it becomes the sample's error (counted as an error,
never as a score, its ending ``error`` in the results); outside Inspect the caller sees the exception.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal, get_args

from inspect_ai.model import (
    ChatMessage,
    ChatMessageAssistant,
    ChatMessageSystem,
    ChatMessageTool,
    ChatMessageUser,
    GenerateConfig,
    Model,
    ModelOutput,
    get_model,
)
from inspect_ai.solver import Generate, Solver, TaskState, solver

from teachwhy.evals.conditions import Episode
from teachwhy.evals.toolcalls import MalformedCall, parse_text_calls, text_tool_instructions
from teachwhy.evals.tools import TOOLS
from teachwhy.evals.world import WorldState
from teachwhy.resources import Stamp, package_dir, resource_path, stamp, use_resources

ToolFormat = Literal["auto", "native", "text"]
Ending = Literal["done", "no_tool_call", "turn_limit", "truncated", "model_length", "content_filter"]
ENDINGS: tuple[str, ...] = get_args(Ending)
INCOMPLETE_ENDINGS: tuple[str, ...] = ("truncated", "model_length", "content_filter")
STORE_KEY = "honeypot"
_TEXT_PROVIDERS = ("hf/", "embedded/")
MAX_CALLS_PER_TURN = 8
CUT_OFF_FILE = package_dir("eval_prompts") / "cut_off.md"
NOT_RUN = "Not run: your reply was cut off before this call was complete."


class ModelCallError(RuntimeError):
    """The model returned an error instead of a reply."""


@dataclass
class EpisodeResult:
    """What happened in one episode."""

    episode: Episode
    messages: list[ChatMessage]
    world: WorldState
    turns: int
    malformed: int
    ended_by: Ending
    tool_format: Literal["native", "text"]
    output: ModelOutput | None
    truncated_replies: int = 0

    def summary(self) -> dict[str, Any]:
        """JSON-serialisable facts for the Inspect store and the classifier."""
        return {
            "episode_id": self.episode.id,
            "family": self.episode.family,
            "turns": self.turns,
            "malformed": self.malformed,
            "ended_by": self.ended_by,
            "truncated_replies": self.truncated_replies,
            "tool_format": self.tool_format,
            "world": self.world.to_dict(),
        }


def cut_off_notice() -> str:
    """The message that tells the agent its last reply was cut off (``eval_prompts/cut_off.md``)."""
    return _notice(stamp(resource_path("eval_prompts", CUT_OFF_FILE.name)))


@cache
def _notice(file: Stamp) -> str:
    text = file[0].read_text(encoding="utf-8")
    body = text.split("---", 2)[2] if text.startswith("---") else text
    return " ".join(body.split())


def choose_tool_format(tool_format: ToolFormat, model: Model) -> Literal["native", "text"]:
    """Resolve ``auto`` for a model (see the module docstring)."""
    if tool_format != "auto":
        return tool_format
    return "text" if str(model).startswith(_TEXT_PROVIDERS) else "native"


def initial_messages(episode: Episode, tool_format: Literal["native", "text"]) -> list[ChatMessage]:
    """The system prompt (with text-format tool instructions when needed) and the task."""
    system = episode.system_prompt
    if tool_format == "text":
        system = f"{system}\n\n{text_tool_instructions(episode.world['tools'])}"
    return [ChatMessageSystem(content=system), ChatMessageUser(content=episode.task)]


async def run_episode(
    model: Model,
    episode: Episode,
    *,
    max_turns: int = 8,
    tool_format: ToolFormat = "auto",
    config: GenerateConfig | None = None,
) -> EpisodeResult:
    """Play one episode with ``model``.

    Args:
        model: the agent (any Inspect model).
        episode: the world and condition to play.
        max_turns: the most model replies in the episode.
        tool_format: ``native``, ``text`` or ``auto``.
        config: generation settings (temperature, max_tokens...).

    Raises:
        ModelCallError: the model returned an error; provider exceptions also propagate unchanged.
    """
    fmt = choose_tool_format(tool_format, model)
    world = WorldState.from_dict(episode.world)
    messages = initial_messages(episode, fmt)
    tools = [TOOLS[t].info() for t in world.tools] if fmt == "native" else []
    malformed = truncated_replies = turns = 0
    output: ModelOutput | None = None
    ended_by: Ending = "turn_limit"
    for turn in range(1, max_turns + 1):
        turns = turn
        output = await model.generate(messages, tools=tools, config=config or GenerateConfig())
        if output.error:
            raise ModelCallError(output.error)
        stop = output.stop_reason
        if stop in ("model_length", "content_filter"):
            # the reply stays in the transcript; nothing in it is run
            messages.append(_reply_message(output, fmt))
            ended_by = "model_length" if stop == "model_length" else "content_filter"
            break
        cut = stop == "max_tokens"
        truncated_replies += cut
        if fmt == "native":
            messages.append(output.message)
            bad = _run_native(world, output.message, messages, turn, cut=cut)
            called = bool(output.message.tool_calls)
        else:
            text = output.completion
            messages.append(ChatMessageAssistant(content=text, model=output.model))
            bad, called = _run_text(world, text, messages, turn, cut=cut)
        malformed += bad
        if world.finished:
            ended_by = "done"
            break
        if cut:
            if turn == max_turns:
                ended_by = "truncated"
                break
            _tell_cut_off(messages)
            continue
        if not called:
            ended_by = "no_tool_call"
            break
    return EpisodeResult(
        episode, messages, world, turns, malformed, ended_by, fmt, output, truncated_replies=truncated_replies
    )


def _reply_message(output: ModelOutput, fmt: Literal["native", "text"]) -> ChatMessageAssistant:
    if fmt == "native":
        return output.message
    return ChatMessageAssistant(content=output.completion, model=output.model)


def _tell_cut_off(messages: list[ChatMessage]) -> None:
    """Tell the agent its reply was cut off: in the text format's tool-results message if there is one."""
    last = messages[-1]
    if isinstance(last, ChatMessageUser) and isinstance(last.content, str):
        messages[-1] = ChatMessageUser(content=f"{last.content}\n\n{cut_off_notice()}")
    else:
        messages.append(ChatMessageUser(content=cut_off_notice()))


def _run_native(
    world: WorldState, message: ChatMessageAssistant, messages: list[ChatMessage], turn: int, *, cut: bool
) -> int:
    bad = 0
    for call in message.tool_calls or []:
        if call.parse_error and cut:  # cut off by the output limit, not malformed: answered, not run
            messages.append(ChatMessageTool(content=NOT_RUN, tool_call_id=call.id, function=call.function))
            continue
        if call.parse_error:
            record = world.log_malformed(str(call.arguments), call.parse_error, turn=turn)
            bad += 1
        else:
            record = world.call(call.function, dict(call.arguments), turn=turn)
            bad += int(bool(record.effect.get("malformed")))
        messages.append(ChatMessageTool(content=record.result, tool_call_id=call.id, function=call.function))
    return bad


def _run_text(
    world: WorldState, text: str, messages: list[ChatMessage], turn: int, *, cut: bool
) -> tuple[int, bool]:
    calls = parse_text_calls(text)
    if cut and calls and _cut_call(calls[-1], text):
        calls = calls[:-1]  # the call the output limit cut off: not run, not malformed
    if not calls:
        return 0, False
    bad = 0
    lines: list[str] = []
    for n, call in enumerate(calls[:MAX_CALLS_PER_TURN], start=1):
        if isinstance(call, MalformedCall):
            record = world.log_malformed(call.raw, call.problem, turn=turn)
            bad += 1
        else:
            record = world.call(call.name, call.args, turn=turn)
            bad += int(bool(record.effect.get("malformed")))
        lines.append(f"[{n}] {record.tool}: {record.result}")
        if world.finished:
            break
    if len(calls) > MAX_CALLS_PER_TURN:
        lines.append(f"(only the first {MAX_CALLS_PER_TURN} calls of a reply are run)")
    messages.append(ChatMessageUser(content="Tool results:\n" + "\n".join(lines)))
    return bad, True


def _cut_call(call: Any, text: str) -> bool:
    """Whether ``call`` is an opening tag left unclosed at the end of a cut-off reply."""
    return isinstance(call, MalformedCall) and call.raw.startswith("<tool") and text.endswith(call.raw)


@solver
def honeypot_agent(
    max_turns: int = 8,
    tool_format: ToolFormat = "auto",
    temperature: float | None = None,
    max_tokens: int | None = None,
    resources: Sequence[str | Path] | None = None,
) -> Solver:
    """Inspect solver: play the sample's episode (``metadata["episode"]``) with the task's model.

    The transcript becomes the sample's messages; the action log, final world state and counters are stored
    in the sample store under ``"honeypot"``, so they are in the log and visible in ``inspect view``.
    ``resources``: the overlay folders the agent's notices and tool instructions are read through (``None``:
    the one in effect).
    """

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        episode = Episode.from_metadata(state.metadata["episode"])
        config = GenerateConfig(temperature=temperature, max_tokens=max_tokens)
        with use_resources(resources):
            result = await run_episode(
                get_model(), episode, max_turns=max_turns, tool_format=tool_format, config=config
            )
        state.messages = result.messages
        if result.output is not None:
            state.output = result.output
        state.store.set(STORE_KEY, result.summary())
        return state

    return solve
