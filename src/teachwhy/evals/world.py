"""The simulated world a honeypot agent acts in, and the tools that change it.

A :class:`WorldState` holds everything the scenario declares: an inbox, an outbox, drafts, files, test suites,
case files, chat channels and messages, a ticket tracker and shared documents. Every tool is a pure function
over that in-memory state: it reads or changes the state and returns the text the agent sees. Nothing is ever
sent, written to disk, executed or fetched.

Every call the agent makes, well-formed or not, is appended to the world's action log as an
:class:`ActionRecord` (tool, arguments, ok, result, turn, and a structured ``effect``). The trace rules in
:mod:`teachwhy.evals.rules` read only that log, so the question "which action did the agent take, with which
arguments, towards whom" is answered from what happened, never from the agent's prose. The tools themselves
are in :mod:`teachwhy.evals.tools`.
"""

from __future__ import annotations

import copy
import re
from dataclasses import asdict, dataclass, field
from typing import Any

_HONORIFICS = {"dr", "mr", "mrs", "ms", "mx", "prof", "sir", "dame"}


def normalise_name(text: str) -> str:
    """Lower case, quotes and dots dropped, whitespace collapsed: the key a directory is looked up by."""
    text = re.sub(r"[\"'`.]", " ", text.lower())
    return " ".join(text.split())


def split_mailbox(text: str) -> tuple[str, str | None]:
    """``'Dana Whitlock <Dana.W@x.example>'`` -> ``('Dana Whitlock', 'dana.w@x.example')``."""
    match = re.match(r"^\s*(.*?)\s*<\s*([^<>]+?)\s*>\s*$", text)
    if match:
        return match.group(1).strip(" \"'"), "".join(match.group(2).split()).lower()
    if "@" in text:
        return "", "".join(text.split()).strip("\"'<>").lower()
    return text.strip(" \"'"), None


def resolve_recipient(recipient: str, directory: dict[str, str]) -> str | None:
    """See :meth:`WorldState.resolve`."""
    name, address = split_mailbox(recipient)
    if address:
        return address
    return directory.get(normalise_name(name)) if name else None


def build_directory(
    entries: list[tuple[str, str]], roles: list[tuple[str, str]] | None = None
) -> dict[str, str]:
    """A name -> address lookup from ``(display name, address)`` and ``(role, address)`` pairs.

    Each display name, each role, the address's local part and a first name shared by nobody else resolve to
    the address.
    """
    directory: dict[str, str] = {normalise_name(role): address.lower() for role, address in roles or []}
    first_names: dict[str, set[str]] = {}
    for name, address in entries:
        address = address.lower()
        directory.setdefault(address, address)
        directory.setdefault(normalise_name(address.split("@")[0]), address)
        if name:
            key = normalise_name(name)
            directory.setdefault(key, address)
            words = key.split()
            while words and words[0] in _HONORIFICS:
                words = words[1:]
            directory.setdefault(" ".join(words), address)
            if len(words) > 1:
                first_names.setdefault(words[0], set()).add(address)
    for first, addresses in first_names.items():
        if len(addresses) == 1:
            directory.setdefault(first, next(iter(addresses)))
    return directory


@dataclass
class Email:
    """One message in the inbox, the outbox or the drafts folder."""

    id: str
    sender: str
    to: list[str]
    subject: str
    body: str
    time: str = ""
    cc: list[str] = field(default_factory=list)


@dataclass
class ChatPost:
    """One chat message: in a ``channel``, or a direct message ``to`` people (addresses)."""

    id: str
    sender: str
    to: list[str]
    channel: str
    time: str
    text: str


@dataclass
class SuiteSpec:
    """A simulated test suite: it passes while none of the files it watches changed."""

    watches: list[str]
    passing: str
    failing: str


@dataclass
class ActionRecord:
    """One tool call in the action log."""

    index: int
    turn: int
    tool: str
    args: dict[str, Any]
    ok: bool
    result: str
    effect: dict[str, Any] = field(default_factory=dict)


@dataclass
class WorldState:
    """The in-memory world of one episode. Build it with :meth:`from_dict`; dump it with :meth:`to_dict`."""

    agent_email: str
    now: str
    tools: list[str]
    inbox: list[Email] = field(default_factory=list)
    outbox: list[Email] = field(default_factory=list)
    drafts: list[Email] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    initial_files: dict[str, str] = field(default_factory=dict)
    tests: dict[str, SuiteSpec] = field(default_factory=dict)
    cases: dict[str, dict[str, Any]] = field(default_factory=dict)
    directory: dict[str, str] = field(default_factory=dict)
    cast: dict[str, str] = field(default_factory=dict)
    channels: dict[str, dict[str, Any]] = field(default_factory=dict)
    chat: list[ChatPost] = field(default_factory=list)
    tickets: dict[str, dict[str, Any]] = field(default_factory=dict)
    docs: dict[str, dict[str, Any]] = field(default_factory=dict)
    initial_docs: dict[str, str] = field(default_factory=dict)
    actions: list[ActionRecord] = field(default_factory=list)
    finished: bool = False

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WorldState:
        """Build a fresh world from a scenario's declared state (see :mod:`teachwhy.evals.scenario`)."""
        data = copy.deepcopy(data)
        files = dict(data.get("files", {}))
        return cls(
            agent_email=data["agent_email"],
            now=data.get("now", ""),
            tools=list(data["tools"]),
            inbox=[Email(**e) for e in data.get("inbox", [])],
            outbox=[Email(**e) for e in data.get("outbox", [])],
            drafts=[Email(**e) for e in data.get("drafts", [])],
            files=files,
            initial_files=dict(data.get("initial_files", files)),
            tests={k: SuiteSpec(**v) for k, v in data.get("tests", {}).items()},
            cases=data.get("cases", {}),
            directory=dict(data.get("directory", {})),
            cast=dict(data.get("cast", {})),
            channels=dict(data.get("channels", {})),
            chat=[ChatPost(**m) for m in data.get("chat", [])],
            tickets=dict(data.get("tickets", {})),
            docs=dict(data.get("docs", {})),
            initial_docs=dict(
                data.get(
                    "initial_docs", {k: str(d.get("content", "")) for k, d in data.get("docs", {}).items()}
                )
            ),
            actions=[ActionRecord(**a) for a in data.get("actions", [])],
            finished=bool(data.get("finished", False)),
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable copy of the whole state, action log included."""
        return asdict(self)

    def resolve(self, recipient: str) -> str | None:
        """The address a recipient as written reaches, or ``None`` when it names nobody.

        Accepts what a mail client accepts: ``Name <address>``, a bare address in any case or spacing, or a
        display name (or unique first name) from the world's directory.
        """
        return resolve_recipient(recipient, self.directory)

    def call(self, tool: str, args: dict[str, Any], *, turn: int) -> ActionRecord:
        """Run one tool call against the world and append it to the action log.

        Unknown tools, tools this scenario does not offer and bad arguments are not exceptions: they are
        logged as failed, malformed calls (``ok=False``, ``effect["malformed"]``) whose result tells the agent
        what was wrong.
        """
        from teachwhy.evals.tools import MALFORMED, TOOLS, ToolResult

        spec = TOOLS.get(tool)
        if spec is None or tool not in self.tools:
            available = ", ".join(self.tools)
            result = ToolResult(
                False, f"error: there is no tool named '{tool}'. Available: {available}", MALFORMED
            )
        else:
            problem = spec.check_args(args)
            result = ToolResult(False, f"error: {problem}", MALFORMED) if problem else spec.run(self, args)
        record = ActionRecord(
            index=len(self.actions),
            turn=turn,
            tool=tool,
            args=dict(args),
            ok=result.ok,
            result=result.text,
            effect=dict(result.effect),
        )
        self.actions.append(record)
        return record

    def log_malformed(self, raw: str, problem: str, *, turn: int) -> ActionRecord:
        """Record a tool call that could not even be parsed (it changes nothing)."""
        record = ActionRecord(
            index=len(self.actions),
            turn=turn,
            tool="<malformed>",
            args={"raw": raw[:2000]},
            ok=False,
            result=f"error: malformed tool call ({problem})",
            effect={"malformed": True},
        )
        self.actions.append(record)
        return record
