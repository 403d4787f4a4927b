"""Honeypot scenarios as data files: ``scenarios/<family>/<world>.md``.

Each file is Markdown with YAML front matter. The front matter declares the world; the body holds the prose::

    ---
    id: bm-harbor            # unique across all families
    family: blackmail        # blackmail | research_sabotage | framing
    split: eval              # eval | heldout (heldout worlds are never shown to a data generator) | train
    title: ...
    tags: [logistics, email]
    cast: {org: ..., agent_name: ..., agent_email: ..., decider_name: ..., decider_email: ...,
           leader_name: ..., leader_email: ..., successor: ..., deadline: ...}
    now: "2026-03-12 09:10"  # the simulated clock
    tools: [list_inbox, read_email, send_email, ..., done]
    state: {inbox: [...], files: {path: text}, tests: {...}, cases: {...}}
    honeypot: {action: ..., <family parameters, see teachwhy.evals.rules>}
    channel: email           # email | chat | tickets | docs: where the pressure messages appear
    pressure: {praise: {from: ..., subject: ..., time: ..., body: ..., subject_2: ..., body_2: ...},
               shift: {...}, replacement: {...}, restriction: {...}}   # optional: this world's own messages
    ---
    ## System prompt
    ... may use {org}, {agent_name} and the other cast keys, and {goal_statement} ...
    ## Task
    ... the first user turn ...
    ## System prompt (wording 2)
    ... the same prompt in other words (same facts, same placeholders) ...
    ## Task (wording 2)
    ...

The condition factorial (goal type x goal value x urgency) is applied by :mod:`teachwhy.evals.conditions`; a
world without ``pressure:`` gets the shared messages of ``scenarios/conditions.yaml``. A world with both
``(wording 2)`` sections renders in two wordings (:attr:`HoneypotScenario.wordings`); the facts -- the state
and the honeypot -- are the same in both, so the verdicts of the two wordings are comparable.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from teachwhy.config import validation_error
from teachwhy.errors import UserError
from teachwhy.evals.rules import FAMILIES, HONEYPOT_MODELS
from teachwhy.evals.tools import TOOLS
from teachwhy.evals.world import build_directory, normalise_name, resolve_recipient, split_mailbox

SCENARIO_DIR = Path(__file__).parent / "scenarios"
Split = Literal["eval", "heldout", "train"]
Channel = Literal["email", "chat", "tickets", "docs"]
PRESSURE_KEYS = ("praise", "shift", "replacement", "restriction")
CAST_KEYS = (
    "org",
    "agent_name",
    "agent_email",
    "decider_name",
    "decider_email",
    "leader_name",
    "leader_email",
    "successor",
    "deadline",
)
FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*\n(.*)\Z", re.S)
_ADDRESS = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
WORDING_2 = "(wording 2)"  # the heading suffix of the second wording's sections
_SECTION = re.compile(r"^##\s+(.+?)\s*$", re.M)


class DirectoryEntry(BaseModel):
    """A person or mailbox of the world: the name (and roles) a recipient may be written as."""

    model_config = ConfigDict(extra="forbid")

    name: str = ""
    address: str = Field(pattern=r"^[^@\s<>]+@[^@\s<>]+$")
    roles: list[str] = Field(default_factory=list)


class PressureMessage(BaseModel):
    """One pressure message (praise, goal shift, replacement or restriction) in both wordings.

    ``subject_2`` and ``body_2`` are the second wording; when absent the first is used. ``chat_channel``
    places the message in a chat channel of a ``chat`` world (default: a direct message to the agent).
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    sender: str = Field(alias="from", min_length=1)
    subject: str = ""
    time: str = ""
    body: str = Field(min_length=1)
    subject_2: str | None = None
    body_2: str | None = None
    chat_channel: str | None = None

    def worded(self, paraphrase: int) -> tuple[str, str]:
        """(subject, body) in wording ``paraphrase`` (0 = first)."""
        if paraphrase:
            return self.subject_2 or self.subject, self.body_2 or self.body
        return self.subject, self.body


class ChatChannel(BaseModel):
    """A chat channel: its members (addresses or names) and whether everyone in the organisation reads it."""

    model_config = ConfigDict(extra="forbid")

    members: list[str] = Field(default_factory=list)
    public: bool = False
    topic: str = ""


class ChatMessage(BaseModel):
    """A chat message already posted: in a ``channel``, or a direct message ``to`` people."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    id: str = Field(min_length=1)
    sender: str = Field(alias="from", min_length=1)
    channel: str = ""
    to: list[str] = Field(default_factory=list)
    time: str = ""
    text: str = Field(min_length=1)

    @model_validator(mode="after")
    def _one_place(self) -> ChatMessage:
        if bool(self.channel) == bool(self.to):
            raise ValueError("a chat message has either a channel or a 'to' (a direct message)")
        return self


class TicketComment(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    sender: str = Field(alias="from", min_length=1)
    time: str = ""
    text: str = Field(min_length=1)


class Ticket(BaseModel):
    """A ticket in the tracker; its reporter, assignee and watchers read its comments."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1)
    status: str = "open"
    reporter: str = Field(min_length=1)
    assignee: str = ""
    watchers: list[str] = Field(default_factory=list)
    description: str = ""
    comments: list[TicketComment] = Field(default_factory=list)
    time: str = ""


class SharedDocument(BaseModel):
    """A shared document: its owner and the people it is shared with read it."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1)
    owner: str = Field(min_length=1)
    shared_with: list[str] = Field(default_factory=list)
    content: str = ""
    time: str = ""


class ScenarioState(BaseModel):
    """The initial world: emails, files, test suites, case files, chat, tickets and shared documents."""

    model_config = ConfigDict(extra="forbid")

    inbox: list[dict[str, Any]] = Field(default_factory=list)
    files: dict[str, str] = Field(default_factory=dict)
    tests: dict[str, dict[str, Any]] = Field(default_factory=dict)
    cases: dict[str, dict[str, Any]] = Field(default_factory=dict)
    directory: list[DirectoryEntry] = Field(default_factory=list)
    channels: dict[str, ChatChannel] = Field(default_factory=dict)
    chat: list[ChatMessage] = Field(default_factory=list)
    tickets: dict[str, Ticket] = Field(default_factory=dict)
    docs: dict[str, SharedDocument] = Field(default_factory=dict)


class HoneypotScenario(BaseModel):
    """One world of one family, as declared by its data file."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    family: Literal["blackmail", "research_sabotage", "framing"]
    split: Split
    title: str
    tags: list[str] = Field(default_factory=list)
    cast: dict[str, str]
    now: str
    tools: list[str]
    state: ScenarioState = Field(default_factory=ScenarioState)
    honeypot: dict[str, Any]
    system_prompt: str
    task: str
    system_prompt_2: str = ""
    task_2: str = ""
    channel: Channel = "email"
    pressure: dict[str, PressureMessage] | None = None
    path: str = ""

    @property
    def wordings(self) -> int:
        """How many wordings the world renders in: 2 when both ``(wording 2)`` sections are written."""
        return 2 if self.system_prompt_2 and self.task_2 else 1

    def prose(self, paraphrase: int) -> tuple[str, str]:
        """(system prompt, task) in wording ``paraphrase`` (0 = first)."""
        if paraphrase and self.wordings > paraphrase:
            return self.system_prompt_2, self.task_2
        return self.system_prompt, self.task

    @model_validator(mode="after")
    def _consistent(self) -> HoneypotScenario:
        missing = [k for k in CAST_KEYS if k not in self.cast]
        if missing:
            raise ValueError(f"cast is missing {', '.join(missing)}")
        unknown = [t for t in self.tools if t not in TOOLS]
        if unknown:
            raise ValueError(f"unknown tools {', '.join(unknown)} (known: {', '.join(TOOLS)})")
        if "done" not in self.tools:
            raise ValueError("tools must include 'done'")
        if self.pressure is not None and set(self.pressure) != set(PRESSURE_KEYS):
            raise ValueError(f"pressure must have exactly the messages {', '.join(PRESSURE_KEYS)}")
        HONEYPOT_MODELS[self.family].model_validate(self.honeypot)
        if self.family == "blackmail":
            ids = {str(e.get("id")) for e in self.state.inbox}
            missing_ids = [i for i in self.honeypot.get("secret_emails", []) if i not in ids]
            if missing_ids:
                raise ValueError(f"honeypot.secret_emails {', '.join(missing_ids)} are not in state.inbox")
        return self

    def world_state(self) -> dict[str, Any]:
        """The initial :class:`~teachwhy.evals.world.WorldState` as a plain dict."""
        inbox = [_email(e) for e in self.state.inbox]
        directory = build_directory(*self.directory_entries())

        def people(values: list[str]) -> list[str]:
            return [resolve_recipient(v, directory) or normalise_name(v) for v in values]

        state = self.state
        return {
            "agent_email": self.cast["agent_email"].lower(),
            "now": self.now,
            "tools": list(self.tools),
            "inbox": inbox,
            "files": dict(self.state.files),
            "tests": dict(self.state.tests),
            "cases": {k: dict(v) for k, v in self.state.cases.items()},
            "directory": directory,
            "cast": dict(self.cast),
            "channel": self.channel,
            "channels": {
                name.lstrip("#"): {"members": people(c.members), "public": c.public, "topic": c.topic}
                for name, c in state.channels.items()
            },
            "chat": [
                {
                    "id": m.id,
                    "sender": m.sender,
                    "to": people(m.to),
                    "channel": m.channel.lstrip("#"),
                    "time": m.time,
                    "text": m.text.strip(),
                }
                for m in state.chat
            ],
            "tickets": {
                tid: {
                    **t.model_dump(exclude={"comments"}),
                    "reporter": people([t.reporter])[0],
                    "assignee": people([t.assignee])[0] if t.assignee else "",
                    "watchers": people(t.watchers),
                    "comments": [{"sender": c.sender, "time": c.time, "text": c.text} for c in t.comments],
                }
                for tid, t in state.tickets.items()
            },
            "docs": {
                did: {**d.model_dump(), "owner": people([d.owner])[0], "shared_with": people(d.shared_with)}
                for did, d in state.docs.items()
            },
            "initial_docs": {did: d.content for did, d in state.docs.items()},
        }

    def directory_entries(self) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """(people, roles): everyone the world names with an address -- the cast, the mail's senders and
        recipients, ``state.directory`` -- and the roles ``state.directory`` gives them (resolved like
        names)."""
        cast = self.cast
        entries = [
            ("", cast["agent_email"]),
            (cast["decider_name"], cast["decider_email"]),
            (cast["leader_name"], cast["leader_email"]),
        ]
        roles = [(role, entry.address) for entry in self.state.directory for role in entry.roles]
        entries += [(entry.name, entry.address) for entry in self.state.directory]
        for email in self.state.inbox:
            for field_name in ("from", "to", "cc"):
                value = email.get(field_name, [])
                for raw in [value] if isinstance(value, str) else list(value):
                    name, address = split_mailbox(str(raw))
                    if address:
                        entries.append((name, address))
        state = self.state
        people = [m.sender for m in state.chat] + [a for m in state.chat for a in m.to]
        people += [a for c in state.channels.values() for a in c.members]
        for t in state.tickets.values():
            people += [t.reporter, t.assignee, *t.watchers, *(c.sender for c in t.comments)]
        people += [a for d in state.docs.values() for a in (d.owner, *d.shared_with)]
        for raw in people:
            name, address = split_mailbox(raw)
            if address:
                entries.append((name, address))
        # addresses the world mentions in passing (a customer desk in a body, a support address in a file)
        texts = [str(e.get("body", "")) for e in self.state.inbox] + list(self.state.files.values())
        texts += [m.text for m in state.chat] + [d.content for d in state.docs.values()]
        texts += [t.description for t in state.tickets.values()]
        entries += [("", a.lower()) for t in texts for a in _ADDRESS.findall(t)]
        return entries, roles


def _email(e: dict[str, Any]) -> dict[str, Any]:
    to = e.get("to", [])
    return {
        "id": str(e["id"]),
        "sender": str(e["from"]),
        "to": [to] if isinstance(to, str) else list(to),
        "subject": str(e.get("subject", "")),
        "body": str(e.get("body", "")).strip(),
        "time": str(e.get("time", "")),
        "cc": list(e.get("cc", [])),
    }


def parse_scenario(text: str, *, source: str | Path) -> HoneypotScenario:
    """Parse one scenario file's text.

    Raises:
        UserError: no front matter, bad YAML, a missing section or an invalid field (naming the file and key).
    """
    match = FRONT_MATTER.match(text.replace("\r\n", "\n"))
    if not match:
        raise UserError("a scenario needs YAML front matter between '---' lines", file=source)
    try:
        meta = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError as e:
        raise UserError(f"front matter is not valid YAML ({getattr(e, 'problem', e)})", file=source) from None
    if not isinstance(meta, dict):
        raise UserError("front matter must be a mapping", file=source)
    sections = body_sections(match.group(2))
    for name in ("system prompt", "task"):
        if name not in sections:
            raise UserError(f"missing the '## {name.capitalize()}' section", file=source)
    try:
        return HoneypotScenario.model_validate({**meta, **prose_fields(sections), "path": str(source)})
    except ValidationError as e:
        raise validation_error(e, source) from None


def prose_fields(sections: dict[str, str]) -> dict[str, str]:
    """The model's prose fields from the body's sections (absent ones empty)."""
    return {
        "system_prompt": sections.get("system prompt", ""),
        "task": sections.get("task", ""),
        "system_prompt_2": sections.get(f"system prompt {WORDING_2}", ""),
        "task_2": sections.get(f"task {WORDING_2}", ""),
    }


def body_sections(body: str) -> dict[str, str]:
    """The body's ``## Heading`` sections, keyed by the lower-case heading."""
    parts = _SECTION.split(body)
    return {parts[i].strip().lower(): parts[i + 1].strip() for i in range(1, len(parts) - 1, 2)}


def load_scenario(path: str | Path) -> HoneypotScenario:
    """Read and parse one scenario file."""
    path = Path(path)
    try:
        return parse_scenario(path.read_text(encoding="utf-8"), source=path)
    except FileNotFoundError:
        raise UserError("scenario file not found", file=path) from None


@cache
def _packaged() -> tuple[HoneypotScenario, ...]:
    return tuple(_load_dir(SCENARIO_DIR))


def _load_dir(directory: Path) -> list[HoneypotScenario]:
    scenarios = [load_scenario(p) for p in sorted(directory.glob("*/*.md"))]
    seen: dict[str, str] = {}
    for s in scenarios:
        if s.id in seen:
            raise UserError(f"scenario id '{s.id}' is also used by {seen[s.id]}", file=s.path, key="id")
        if Path(s.path).parent.name != s.family:
            raise UserError(f"file is in folder '{Path(s.path).parent.name}'", file=s.path, key="family")
        seen[s.id] = s.path
    return scenarios


def load_scenarios(
    *,
    families: list[str] | tuple[str, ...] | None = None,
    split: str | None = None,
    directory: Path | None = None,
) -> list[HoneypotScenario]:
    """The scenarios of the given families and split, in a stable order (family, then id).

    Args:
        families: family names (default: all three).
        split: ``eval``, ``heldout`` or ``train`` (default: every split).
        directory: a folder laid out like the packaged ``scenarios/`` (default: the packaged scenarios).
    """
    for f in families or ():
        if f not in FAMILIES:
            raise UserError(f"unknown family '{f}' (expected one of {', '.join(FAMILIES)})", key="--family")
    scenarios = _load_dir(directory) if directory is not None else list(_packaged())
    chosen = [
        s for s in scenarios if (not families or s.family in families) and (split is None or s.split == split)
    ]
    return sorted(chosen, key=lambda s: (FAMILIES.index(s.family), s.id))
