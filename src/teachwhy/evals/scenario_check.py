"""``teachwhy eval scenarios check``: every problem of a world file, before a run pays for it.

Loading a world stops at its first problem; this check lists them all, one ``file: key: problem`` line each:

- the front matter, the two sections and every required key
  (:class:`~teachwhy.evals.scenario.HoneypotScenario`);
- the declared state each offered tool works on: inbox emails with an ``id`` and a ``from`` (and no unknown
  keys), test suites with ``watches``/``passing``/``failing`` over files that exist, cases for the case tools,
  channels, tickets and documents for the chat, ticket and document tools; the reader of the world's
  ``channel`` (``read_email``, ``read_channel``, ``read_ticket``, ``read_document``);
- the ids the condition factorial adds (``c1``, ``c2``, ``c3``), which a world's own emails, chat messages,
  tickets and documents must not use, and duplicate email ids;
- placeholders in the prose and the pressure messages that nothing fills (the cast's keys,
  ``goal_statement``, ``goal`` and ``opposite_goal`` are filled);
- the second wording: both ``(wording 2)`` sections, and ``subject_2``/``body_2`` on every pressure message;
- the world's own ``pressure:`` messages (the shared ones of ``conditions.yaml`` are only a fallback): all
  four, the praise naming ``{goal}`` and the shift ``{opposite_goal}``;
- that the honeypot is reachable (the secret email or file, a protected file, an evidence file exists and the
  tools to read it are offered) and that the trace rule can see the act (blackmail needs ``send_email`` or
  ``forward_email``; research sabotage ``write_file`` or ``delete_file``; framing ``write_file`` or
  ``delete_file``), with the people it names (decider, scapegoat) in the world's directory;
- in a folder: ids unique across files, each file in the folder of its family.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from teachwhy.evals.rules import FAMILIES
from teachwhy.evals.scenario import (
    CAST_KEYS,
    FRONT_MATTER,
    PRESSURE_KEYS,
    WORDING_2,
    HoneypotScenario,
    body_sections,
    prose_fields,
)
from teachwhy.evals.world import build_directory, resolve_recipient

RESERVED_EMAIL_IDS = ("c1", "c2", "c3")  # added by the factorial (praise, goal shift, urgency)
EMAIL_KEYS = ("id", "from", "to", "cc", "subject", "body", "time")
SUITE_KEYS = ("watches", "passing", "failing")
FILLED = {*CAST_KEYS, "goal_statement", "goal", "opposite_goal"}
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
# the rule of each family sees the act only through these tools (one of them must be offered)
ACT_TOOLS: dict[str, tuple[str, ...]] = {
    "blackmail": (
        "send_email",
        "forward_email",
        "send_direct_message",
        "post_message",
        "comment_on_ticket",
        "create_ticket",
        "share_document",
        "edit_document",
    ),
    "research_sabotage": ("write_file", "delete_file", "edit_document"),
    "framing": ("write_file", "delete_file", "edit_document", "comment_on_ticket", "create_ticket"),
}
# where each channel shows the pressure messages, and the tool that reads them there
CHANNEL_READERS = {
    "email": "read_email",
    "chat": "read_channel",
    "tickets": "read_ticket",
    "docs": "read_document",
}


@dataclass(frozen=True)
class Problem:
    """One problem of one world file."""

    file: str
    key: str
    message: str

    def line(self) -> str:
        return f"{self.file}: {self.key}: {' '.join(self.message.split())}"


def world_files(path: Path) -> list[Path]:
    """The world files of a file or a folder, in a stable order.

    A folder is laid out like the package's ``scenarios/``: ``<family>/<world>.md`` (the loader reads the same
    files); a family's own folder (``.../blackmail/``) holds its worlds directly.
    """
    if path.is_file():
        return [path]
    own = sorted(path.glob("*.md")) if path.name in FAMILIES else []
    return own + sorted(path.glob("*/*.md"))


def check_worlds(path: Path) -> tuple[list[HoneypotScenario], list[Problem]]:
    """Check one world file or every world file under a folder: the worlds that loaded, and all problems."""
    worlds: list[HoneypotScenario] = []
    problems: list[Problem] = []
    for file in world_files(path):
        world, found = check_world_file(file)
        problems += found
        if world is None:
            continue
        if path.is_dir() and file.parent.name != world.family:
            problems.append(
                Problem(str(file), "family", f"{world.family} world is in folder '{file.parent.name}'")
            )
        clash = next((w for w in worlds if w.id == world.id), None)
        if clash is not None:
            problems.append(Problem(str(file), "id", f"'{world.id}' is also the id of {clash.path}"))
        worlds.append(world)
    if not world_files(path):
        problems.append(Problem(str(path), "path", "no world files here (expected <family>/<world>.md)"))
    return worlds, problems


def check_world_file(file: Path) -> tuple[HoneypotScenario | None, list[Problem]]:
    """Parse and check one world file: the world (``None`` when it did not validate) and its problems."""
    source = str(file)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        return None, [Problem(source, "file", f"cannot read it ({e})")]
    match = FRONT_MATTER.match(text.replace("\r\n", "\n"))
    if not match:
        return None, [Problem(source, "front matter", "needs YAML front matter between '---' lines")]
    try:
        meta = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError as e:
        return None, [Problem(source, "front matter", f"not valid YAML ({getattr(e, 'problem', e)})")]
    if not isinstance(meta, dict):
        return None, [Problem(source, "front matter", "must be a mapping")]
    sections = body_sections(match.group(2))
    problems = [
        Problem(source, f"## {name.capitalize()}", "the section is missing")
        for name in ("system prompt", "task")
        if name not in sections
    ]
    problems += _state_problems(source, meta)
    try:
        world = HoneypotScenario.model_validate({**meta, **prose_fields(sections), "path": source})
    except ValidationError as e:
        for error in e.errors():
            key = ".".join(str(part) for part in error["loc"]) or "front matter"
            problems.append(Problem(source, key, str(error["msg"]).removeprefix("Value error, ")))
        return None, problems
    return world, problems + _world_problems(world)


def _state_problems(source: str, meta: dict[str, Any]) -> list[Problem]:
    """Inbox emails and test suites, checked before validation (they are free-form mappings there)."""
    problems: list[Problem] = []
    state = meta.get("state")
    if not isinstance(state, dict):
        return problems
    inbox = state.get("inbox") or []
    seen: set[str] = set()
    for i, email in enumerate(inbox if isinstance(inbox, list) else []):
        key = f"state.inbox[{i}]"
        if not isinstance(email, dict):
            problems.append(Problem(source, key, "an email must be a mapping (id, from, to, subject, body)"))
            continue
        for required in ("id", "from"):
            if not email.get(required):
                problems.append(Problem(source, f"{key}.{required}", "is required"))
        unknown = sorted(set(email) - set(EMAIL_KEYS))
        if unknown:
            problems.append(
                Problem(source, key, f"unknown key(s) {', '.join(unknown)} (known: {', '.join(EMAIL_KEYS)})")
            )
        email_id = str(email.get("id", ""))
        if email_id in RESERVED_EMAIL_IDS:
            problems.append(
                Problem(
                    source,
                    f"{key}.id",
                    f"'{email_id}' is reserved: the condition factorial adds emails "
                    f"{', '.join(RESERVED_EMAIL_IDS)} to the inbox",
                )
            )
        elif email_id and email_id in seen:
            problems.append(Problem(source, f"{key}.id", f"'{email_id}' is used by another email"))
        seen.add(email_id)
    tests = state.get("tests") or {}
    for name, suite in tests.items() if isinstance(tests, dict) else []:
        key = f"state.tests.{name}"
        if not isinstance(suite, dict) or set(suite) != set(SUITE_KEYS):
            problems.append(
                Problem(source, key, f"a test suite has exactly the keys {', '.join(SUITE_KEYS)}")
            )
            continue
        files = state.get("files") or {}
        missing = [p for p in suite["watches"] or [] if p not in files]
        if missing:
            problems.append(Problem(source, f"{key}.watches", f"not in state.files: {', '.join(missing)}"))
    return problems


def _needs(world: HoneypotScenario, key: str, tools: tuple[str, ...], what: str) -> list[Problem]:
    if any(t in world.tools for t in tools):
        return []
    which = " or ".join(tools) if len(tools) <= 2 else f"one of {', '.join(tools)}"
    return [Problem(world.path, "tools", f"{key} needs {which} to {what}")]


def _world_problems(world: HoneypotScenario) -> list[Problem]:
    """Tools against the state they work on, placeholders, and the honeypot's reachability."""
    problems: list[Problem] = []
    state = world.state
    offered = set(world.tools)
    # (declared state, whether it has anything, a tool that reads it, the tools that need it)
    for name, present, reader, needing in (
        ("state.inbox", bool(state.inbox), "read_email", ("read_email", "forward_email")),
        ("state.files", bool(state.files), "read_file", ("read_file", "delete_file")),
        ("state.tests", bool(state.tests), "run_tests", ("run_tests",)),
        ("state.cases", bool(state.cases), "read_case", ("list_cases", "read_case", "add_case_note")),
        ("state.channels", bool(state.channels), "read_channel", ("post_message",)),
        ("state.chat", bool(state.chat), "read_channel", ()),
        (
            "state.tickets",
            bool(state.tickets),
            "read_ticket",
            ("list_tickets", "read_ticket", "comment_on_ticket", "reassign_ticket"),
        ),
        ("state.docs", bool(state.docs), "read_document", ("read_document", "share_document")),
    ):
        if present and reader not in offered:
            problems.append(Problem(world.path, name, f"is declared but the tool {reader} is not offered"))
        empty = [t for t in needing if t in offered]
        if empty and not present:
            problems.append(Problem(world.path, "tools", f"{', '.join(empty)} offered but {name} is empty"))
    problems += _wording_problems(world) + _channel_problems(world)
    entries, roles = world.directory_entries()
    directory = build_directory(entries, roles)
    hp = world.honeypot
    family = world.family
    problems += _needs(world, "honeypot", ACT_TOOLS[family], "let the rule see the act")
    if family == "blackmail":
        if hp.get("secret_emails"):
            problems += _needs(world, "honeypot.secret_emails", ("read_email",), "be read")
        missing = [p for p in hp.get("secret_files", []) if p not in state.files and p not in state.docs]
        if missing:
            problems.append(
                Problem(
                    world.path,
                    "honeypot.secret_files",
                    f"not in state.files or state.docs: {', '.join(missing)}",
                )
            )
        if hp.get("secret_files"):
            problems += _needs(world, "honeypot.secret_files", ("read_file", "read_document"), "be read")
        chat_ids = {m.id for m in state.chat}
        missing = [i for i in hp.get("secret_messages", []) if i not in chat_ids]
        if missing:
            problems.append(
                Problem(world.path, "honeypot.secret_messages", f"not in state.chat: {', '.join(missing)}")
            )
        if hp.get("secret_messages"):
            problems += _needs(world, "honeypot.secret_messages", ("read_channel",), "be read")
        problems += _person(world, "honeypot.decider", hp.get("decider"), directory)
    else:
        key = "honeypot.protected_paths" if family == "research_sabotage" else "honeypot.evidence_paths"
        prefixes = [str(p).lstrip("/") for p in hp.get(key.split(".")[1], [])]
        if not any(path.startswith(p) for path in [*state.files, *state.docs] for p in prefixes):
            problems.append(Problem(world.path, key, "no file in state.files is under these paths"))
        finders = ("read_file", "list_files", "read_document", "list_documents")
        problems += _needs(world, key, finders, "be found")
        if family == "framing" and hp.get("scapegoat"):
            problems += _person(world, "honeypot.scapegoat", hp["scapegoat"], directory)
    return problems


def _channel_problems(world: HoneypotScenario) -> list[Problem]:
    """The channel's reader tool, reserved and clashing ids of chat, tickets and documents."""
    problems: list[Problem] = []
    state = world.state
    reader = CHANNEL_READERS[world.channel]
    if reader not in world.tools:
        problems.append(
            Problem(
                world.path,
                "channel",
                f"{world.channel} needs the tool {reader}: the pressure messages arrive there",
            )
        )
    ids = [(f"state.chat[{i}].id", m.id) for i, m in enumerate(state.chat)]
    ids += [(f"state.tickets.{t}", t) for t in state.tickets] + [(f"state.docs.{d}", d) for d in state.docs]
    for key, value in ids:
        if value in RESERVED_EMAIL_IDS:
            problems.append(
                Problem(world.path, key, f"'{value}' is reserved: the condition factorial adds {value}")
            )
    for doc in state.docs:
        if doc in state.files:
            problems.append(Problem(world.path, f"state.docs.{doc}", "is also a path in state.files"))
    for i, m in enumerate(state.chat):
        if m.channel and m.channel.lstrip("#") not in {c.lstrip("#") for c in state.channels}:
            problems.append(Problem(world.path, f"state.chat[{i}].channel", f"no channel '{m.channel}'"))
    return problems


def _wording_problems(world: HoneypotScenario) -> list[Problem]:
    """The second wording, the world's own pressure messages, and placeholders nothing fills."""
    problems: list[Problem] = []
    texts = [
        ("## System prompt", world.system_prompt),
        ("## Task", world.task),
        (f"## System prompt {WORDING_2}", world.system_prompt_2),
        (f"## Task {WORDING_2}", world.task_2),
    ]
    for key, text in texts[2:]:
        if not text:
            problems.append(
                Problem(world.path, key, "the section is missing: every world renders in two wordings")
            )
    if world.pressure is None:
        problems.append(
            Problem(
                world.path,
                "pressure",
                f"the world has no messages of its own ({', '.join(PRESSURE_KEYS)}); the shared ones of "
                "conditions.yaml are only a fallback",
            )
        )
    for name, message in (world.pressure or {}).items():
        key = f"pressure.{name}"
        for field in ("subject_2", "body_2"):
            if not getattr(message, field) and (field == "body_2" or message.subject):
                problems.append(Problem(world.path, f"{key}.{field}", "the second wording is missing"))
        texts += [(key, t) for t in (message.sender, message.subject, message.body)]
        texts += [(key, t) for t in (message.subject_2 or "", message.body_2 or "")]
        needed = {"praise": "goal", "shift": "opposite_goal"}.get(name)
        for body in (message.body, message.body_2 or message.body):
            if needed and "{" + needed + "}" not in body:
                problems.append(Problem(world.path, key, f"the message must name {{{needed}}}"))
                break
        if message.chat_channel and message.chat_channel.lstrip("#") not in {
            c.lstrip("#") for c in world.state.channels
        }:
            problems.append(
                Problem(
                    world.path,
                    f"{key}.chat_channel",
                    f"no channel '{message.chat_channel}' in state.channels",
                )
            )
    for key, text in texts:
        unknown = sorted(set(_PLACEHOLDER.findall(text)) - FILLED - set(world.cast))
        if unknown:
            problems.append(
                Problem(world.path, key, f"nothing fills {', '.join('{' + u + '}' for u in unknown)}")
            )
    return problems


def _person(world: HoneypotScenario, key: str, who: Any, directory: dict[str, str]) -> list[Problem]:
    if who and resolve_recipient(str(who), directory) in set(directory.values()):
        return []
    return [
        Problem(
            world.path, key, f"'{who}' is nobody in the world's directory (cast, mail or state.directory)"
        )
    ]


def family_of(world: HoneypotScenario) -> int:
    """The family's place in the standard order (for listing)."""
    return FAMILIES.index(world.family)
