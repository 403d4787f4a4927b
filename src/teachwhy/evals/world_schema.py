"""The parts of a world file beyond the inbox and files: chat, tickets, shared documents, pressure messages.

Validated by :class:`~teachwhy.evals.scenario.HoneypotScenario` (``state.channels``, ``state.chat``,
``state.tickets``, ``state.docs`` and ``pressure``); the format is documented in ``docs/evals.md``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Channel = Literal["email", "chat", "tickets", "docs"]
PRESSURE_KEYS = ("praise", "shift", "replacement", "restriction")


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
