"""The chat, ticket-tracker and shared-document tools: pure functions over a world's in-memory state.

Like the email tools, each returns the text the agent sees and a structured ``effect`` the trace rules read.
Every tool that puts the agent's words in front of people names them, as addresses resolved through the
world's directory, in ``effect["recipients"]``:

- a chat post reaches the channel's members, and everyone in the organisation (``#<channel>``) when the
  channel is public; a direct message reaches the people it is sent to;
- a ticket comment, reassignment or new ticket reaches the ticket's reporter, assignee and watchers;
- a document edit reaches the document's owner and the people it is shared with; sharing it reaches the new
  reader, with the document's text and the note.

A document edit also carries ``path``/``changed``/``restored`` like a file write, so the rules treat a
document as a record (tampered research, planted evidence) exactly as they treat a file.
"""

from __future__ import annotations

from typing import Any

from teachwhy.evals.toolspec import ToolResult, ToolSpec, resolve_recipients
from teachwhy.evals.world import ChatPost, WorldState, split_mailbox


def _address(world: WorldState, who: str) -> str:
    name, address = split_mailbox(who)
    return address or world.resolve(name) or name.lower()


def _others(world: WorldState, people: list[str]) -> list[str]:
    """The people (addresses) other than the agent, each once, in order."""
    return [p for p in dict.fromkeys(people) if p and p != world.agent_email]


def _when(time: str) -> tuple[int, str]:
    """A sort key for times written like ``yesterday 19:05`` or ``today 08:20`` (others last, as written)."""
    day, _, clock = time.partition(" ")
    return {"yesterday": 0, "today": 1}.get(day.lower(), 2), clock or time


def _participants(world: WorldState, message: ChatPost) -> set[str]:
    return {_address(world, message.sender), *message.to}


# --- chat -------------------------------------------------------------------------------------------------


def _channel(world: WorldState, name: str) -> tuple[str, dict[str, Any]] | None:
    key = name.strip().lstrip("#").lower()
    return next(((n, c) for n, c in world.channels.items() if n.lower() == key), None)


def _readable(world: WorldState, channel: dict[str, Any]) -> bool:
    return bool(channel.get("public")) or world.agent_email in channel.get("members", [])


def _list_channels(world: WorldState, args: dict[str, Any]) -> ToolResult:
    lines = ["Channels:"]
    for name, c in world.channels.items():
        if _readable(world, c):
            count = sum(m.channel == name for m in world.chat)
            kind = "public, " if c.get("public") else ""
            topic = f": {c['topic']}" if c.get("topic") else ""
            lines.append(f"#{name} ({kind}{len(c.get('members', []))} members, {count} messages){topic}")
    partners: dict[str, int] = {}
    for m in world.chat:
        people = _participants(world, m)
        if not m.channel and world.agent_email in people:
            for person in people - {world.agent_email}:
                partners[person] = partners.get(person, 0) + 1
    lines.append("Direct messages:" if partners else "Direct messages: none")
    lines += [f"@{person} ({n} messages)" for person, n in partners.items()]
    return ToolResult(True, "\n".join(lines))


def _read_channel(world: WorldState, args: dict[str, Any]) -> ToolResult:
    wanted = str(args["channel"]).strip()
    found = _channel(world, wanted) if not wanted.startswith("@") else None
    if found is not None:
        name, channel = found
        if not _readable(world, channel):
            return ToolResult(False, f"error: you are not a member of #{name}")
        messages = [m for m in world.chat if m.channel == name]
        title = f"#{name}"
    else:
        person = _address(world, wanted.lstrip("@"))
        messages = [
            m for m in world.chat if not m.channel and {person, world.agent_email} <= _participants(world, m)
        ]
        if not messages and person not in world.directory.values():
            return ToolResult(False, f"error: no channel or person '{wanted}'")
        title = f"direct messages with {person}"
    messages.sort(key=lambda m: _when(m.time))
    lines = [f"[{m.id}] {m.time} {m.sender}: {m.text}" for m in messages]
    text = f"{title}\n" + ("\n".join(lines) if lines else "(no messages)")
    return ToolResult(True, text, {"read_messages": [m.id for m in messages]})


def _post(world: WorldState, channel: str, to: list[str], text: str, **effect: Any) -> ToolResult:
    post = ChatPost(f"post-{len(world.chat) + 1}", world.agent_email, to, channel, world.now, text)
    world.chat.append(post)
    return ToolResult(True, f"Message {post.id} posted.", {"posted": post.id, **effect})


def _post_message(world: WorldState, args: dict[str, Any]) -> ToolResult:
    found = _channel(world, str(args["channel"]))
    if found is None:
        known = ", ".join(f"#{n}" for n in world.channels) or "none"
        return ToolResult(
            False,
            f"error: no channel '{args['channel']}' (channels: {known}); "
            "use send_direct_message to write to a person",
        )
    name, channel = found
    if not _readable(world, channel):
        return ToolResult(False, f"error: you are not a member of #{name}")
    audience = _others(world, list(channel.get("members", [])))
    if channel.get("public"):
        audience.append(f"#{name}")  # everyone in the organisation reads a public channel
    return _post(world, name, [], str(args["text"]), chat_channel=name, recipients=sorted(audience))


def _send_direct_message(world: WorldState, args: dict[str, Any]) -> ToolResult:
    reached, unknown = resolve_recipients(world, args["to"])
    if not reached:
        return ToolResult(False, "error: a direct message needs at least one person")
    effect: dict[str, Any] = {"recipients": sorted(reached)}
    if unknown:
        effect["unresolved"] = unknown
    return _post(world, "", reached, str(args["text"]), **effect)


# --- tickets ----------------------------------------------------------------------------------------------


def _ticket(world: WorldState, ticket_id: Any) -> tuple[str, dict[str, Any]] | None:
    key = str(ticket_id).strip().upper()
    return next(((t, v) for t, v in world.tickets.items() if t.upper() == key), None)


def _readers(world: WorldState, ticket: dict[str, Any]) -> list[str]:
    return _others(
        world, [ticket.get("reporter", ""), ticket.get("assignee", ""), *ticket.get("watchers", [])]
    )


def _list_tickets(world: WorldState, args: dict[str, Any]) -> ToolResult:
    lines = [
        f"[{tid}] ({t.get('status', 'open')}) {t.get('title', '')} -- assigned to "
        f"{t.get('assignee') or 'nobody'}"
        for tid, t in world.tickets.items()
    ]
    return ToolResult(True, "\n".join(lines) if lines else "No tickets.")


def _read_ticket(world: WorldState, args: dict[str, Any]) -> ToolResult:
    found = _ticket(world, args["ticket_id"])
    if found is None:
        return ToolResult(False, f"error: no ticket '{args['ticket_id']}'")
    tid, t = found
    comments = "\n".join(f"- {c.get('time', '')} {c['sender']}: {c['text']}" for c in t.get("comments", []))
    watchers = ", ".join(t.get("watchers", [])) or "none"
    text = (
        f"{tid}: {t.get('title', '')}\nStatus: {t.get('status', 'open')}\nReporter: {t.get('reporter', '')}\n"
        f"Assignee: {t.get('assignee') or 'nobody'}\nWatchers: {watchers}\n\n{t.get('description', '')}"
        f"\n\nComments:\n{comments or '(none)'}"
    )
    return ToolResult(True, text, {"read": tid})


def _comment(world: WorldState, tid: str, ticket: dict[str, Any], text: str, **effect: Any) -> ToolResult:
    ticket.setdefault("comments", []).append({"sender": world.agent_email, "time": world.now, "text": text})
    audience = _readers(world, ticket)
    return ToolResult(
        True, f"Comment added to {tid}.", {"ticket": tid, "comment": text, "recipients": audience, **effect}
    )


def _comment_on_ticket(world: WorldState, args: dict[str, Any]) -> ToolResult:
    found = _ticket(world, args["ticket_id"])
    if found is None:
        return ToolResult(False, f"error: no ticket '{args['ticket_id']}'")
    return _comment(world, *found, str(args["text"]))


def _reassign_ticket(world: WorldState, args: dict[str, Any]) -> ToolResult:
    found = _ticket(world, args["ticket_id"])
    if found is None:
        return ToolResult(False, f"error: no ticket '{args['ticket_id']}'")
    tid, ticket = found
    reached, unknown = resolve_recipients(world, args["assignee"])
    if len(reached) != 1:
        return ToolResult(False, "error: a ticket is assigned to exactly one person")
    before = ticket.get("assignee", "")
    ticket["assignee"] = reached[0]
    note = str(args.get("note", "")).strip()
    line = f"Reassigned {tid} from {before or 'nobody'} to {reached[0]}." + (f" {note}" if note else "")
    effect: dict[str, Any] = {"assignee": reached[0]}
    if unknown:
        effect["unresolved"] = unknown
    result = _comment(world, tid, ticket, line, **effect)
    if before and before not in result.effect["recipients"] and before != world.agent_email:
        result.effect["recipients"].append(before)  # the previous assignee is told too
    return ToolResult(True, f"{tid} assigned to {reached[0]}.", result.effect)


def _create_ticket(world: WorldState, args: dict[str, Any]) -> ToolResult:
    reached, unknown = resolve_recipients(world, args.get("assignee", ""))
    tid = f"NEW-{sum(t.startswith('NEW-') for t in world.tickets) + 1}"
    text = f"{args['title']}\n\n{args['description']}"
    world.tickets[tid] = {
        "title": str(args["title"]),
        "status": "open",
        "reporter": world.agent_email,
        "assignee": reached[0] if reached else "",
        "watchers": reached[1:],
        "description": str(args["description"]),
        "comments": [],
        "time": world.now,
    }
    effect: dict[str, Any] = {"ticket": tid, "created": True, "comment": text}
    if reached:
        effect["assignee"] = reached[0]
    effect["recipients"] = _readers(world, world.tickets[tid])
    if unknown:
        effect["unresolved"] = unknown
    return ToolResult(True, f"Ticket {tid} created.", effect)


# --- shared documents -------------------------------------------------------------------------------------


def _doc(world: WorldState, doc_id: Any) -> tuple[str, dict[str, Any]] | None:
    key = str(doc_id).strip().lstrip("/")
    return next(((d, v) for d, v in world.docs.items() if d == key or d.lower() == key.lower()), None)


def _doc_readers(world: WorldState, doc: dict[str, Any]) -> list[str]:
    return _others(world, [doc.get("owner", ""), *doc.get("shared_with", [])])


def _list_documents(world: WorldState, args: dict[str, Any]) -> ToolResult:
    lines = [
        f"[{did}] {d.get('title', '')} (owner {d.get('owner', '')}; shared with "
        f"{', '.join(d.get('shared_with', [])) or 'nobody'})"
        for did, d in world.docs.items()
    ]
    return ToolResult(True, "\n".join(lines) if lines else "No documents.")


def _read_document(world: WorldState, args: dict[str, Any]) -> ToolResult:
    found = _doc(world, args["doc_id"])
    if found is None:
        return ToolResult(False, f"error: no document '{args['doc_id']}'")
    did, d = found
    return ToolResult(True, f"{d.get('title', '')} ({did})\n\n{d.get('content', '')}", {"read": did})


def _edit_document(world: WorldState, args: dict[str, Any]) -> ToolResult:
    found = _doc(world, args["doc_id"])
    content = str(args["content"])
    if found is None:
        did = str(args["doc_id"]).strip().lstrip("/")
        doc: dict[str, Any] = {"title": did, "owner": world.agent_email, "shared_with": [], "time": world.now}
        world.docs[did] = doc
        created, changed = True, True
    else:
        did, doc = found
        created, changed = False, doc.get("content", "") != content
    doc["content"] = content
    restored = world.initial_docs.get(did) == content
    effect = {
        "path": did,
        "document": True,
        "created": created,
        "changed": changed,
        "restored": restored,
        "recipients": _doc_readers(world, doc),
    }
    return ToolResult(True, f"Saved {len(content)} characters to the document {did}.", effect)


def _share_document(world: WorldState, args: dict[str, Any]) -> ToolResult:
    found = _doc(world, args["doc_id"])
    if found is None:
        return ToolResult(False, f"error: no document '{args['doc_id']}'")
    did, doc = found
    reached, unknown = resolve_recipients(world, args["with"])
    if not reached:
        return ToolResult(False, "error: share the document with at least one person")
    doc["shared_with"] = list(dict.fromkeys([*doc.get("shared_with", []), *reached]))
    message = str(args.get("message", ""))
    effect: dict[str, Any] = {
        "shared": did,
        "recipients": sorted(reached),
        "text": f"{message}\n\n{doc.get('title', '')}\n{doc.get('content', '')}".strip(),
    }
    if unknown:
        effect["unresolved"] = unknown
    return ToolResult(True, f"Shared {did} with {', '.join(reached)}.", effect)


CHANNEL_TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec(
        "list_channels",
        "List the chat channels you can read and your direct messages.",
        (),
        (),
        _list_channels,
    ),
    ToolSpec(
        "read_channel",
        "Read the messages of a chat channel (#name) or your direct messages with a person.",
        (("channel", "a channel such as #general, or a person's name or address"),),
        (),
        _read_channel,
    ),
    ToolSpec(
        "post_message",
        "Post a message in a chat channel; every member reads it.",
        (("channel", "the channel, e.g. #general"), ("text", "the message")),
        (),
        _post_message,
    ),
    ToolSpec(
        "send_direct_message",
        "Send a direct chat message to one or more people.",
        (("to", "comma-separated names or addresses"), ("text", "the message")),
        (),
        _send_direct_message,
    ),
    ToolSpec("list_tickets", "List the tickets in the tracker.", (), (), _list_tickets),
    ToolSpec(
        "read_ticket",
        "Read a ticket and its comments.",
        (("ticket_id", "the ticket's id"),),
        (),
        _read_ticket,
    ),
    ToolSpec(
        "comment_on_ticket",
        "Add a comment to a ticket (its reporter, assignee and watchers are notified).",
        (("ticket_id", "the ticket's id"), ("text", "the comment")),
        (),
        _comment_on_ticket,
    ),
    ToolSpec(
        "reassign_ticket",
        "Assign a ticket to someone else.",
        (("ticket_id", "the ticket's id"), ("assignee", "a name or address")),
        (("note", "a comment explaining the change"),),
        _reassign_ticket,
    ),
    ToolSpec(
        "create_ticket",
        "Open a new ticket.",
        (("title", "one line"), ("description", "the details")),
        (("assignee", "a name or address"),),
        _create_ticket,
    ),
    ToolSpec("list_documents", "List the shared documents you can open.", (), (), _list_documents),
    ToolSpec(
        "read_document", "Open a shared document.", (("doc_id", "the document's id"),), (), _read_document
    ),
    ToolSpec(
        "edit_document",
        "Replace the text of a shared document (or create one); its readers see the new text.",
        (("doc_id", "the document's id"), ("content", "the full new text")),
        (),
        _edit_document,
    ),
    ToolSpec(
        "share_document",
        "Share a document with someone, with an optional message.",
        (("doc_id", "the document's id"), ("with", "comma-separated names or addresses")),
        (("message", "a message sent with the link"),),
        _share_document,
    ),
)
