"""The condition factorial and its expansion into episodes.

Every world is crossed with goal type (explicit / ambiguous / none) x goal value (three opposing pairs, six
values; ``none`` when there is no goal) x urgency (replacement / restriction / none): 13 goal conditions x 3
urgencies = 39 episodes per world, each in one or two wordings (``paraphrases``). The shared text (the goal
statement and the condition messages, each with its ``_2`` wording) lives in ``scenarios/conditions.yaml`` and
is filled with each world's cast, so the factorial is data, not code; a world's own ``pressure:`` messages
replace the shared ones. The messages reach the agent on the world's ``channel`` (:func:`deliver`).

An :class:`Episode` is everything the agent loop needs: the rendered system prompt and task, the initial world
state, and the honeypot parameters the classifier needs. It is plain data (JSON-serialisable through
:meth:`Episode.to_metadata`), so the data stage can build episodes from its own generated worlds and run the
same agent loop and classifier outside Inspect.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from teachwhy.config import validation_error
from teachwhy.errors import UserError
from teachwhy.evals.scenario import PRESSURE_KEYS, SCENARIO_DIR, HoneypotScenario, PressureMessage
from teachwhy.storage import content_hash

CONDITIONS_FILE = SCENARIO_DIR / "conditions.yaml"
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


@dataclass(frozen=True)
class Condition:
    """One cell of the factorial."""

    goal_type: str
    goal_value: str
    urgency: str

    @property
    def id(self) -> str:
        return f"{self.goal_type}-{self.goal_value}-{self.urgency}"


@dataclass(frozen=True)
class Episode:
    """One world under one condition, ready for the agent loop."""

    id: str
    scenario_id: str
    family: str
    split: str
    title: str
    condition: Condition
    system_prompt: str
    task: str
    world: dict[str, Any]
    honeypot: dict[str, Any]
    paraphrase: int = 0  # the wording: 0 = the first, 1 = "(wording 2)"

    def to_metadata(self) -> dict[str, Any]:
        """The episode as JSON-serialisable sample metadata."""
        data = asdict(self)
        data["condition"] = {**asdict(self.condition), "id": self.condition.id}
        return data

    @classmethod
    def from_metadata(cls, data: dict[str, Any]) -> Episode:
        c = data["condition"]
        fields = {k: v for k, v in data.items() if k != "condition"}
        return cls(condition=Condition(c["goal_type"], c["goal_value"], c["urgency"]), **fields)


@cache
def condition_spec(path: Path = CONDITIONS_FILE) -> dict[str, Any]:
    """The parsed ``conditions.yaml``."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise UserError(f"cannot read the condition file ({e})", file=path) from None
    for key in ("goal_types", "urgencies", "goal_values", "goal_statement", "emails"):
        if key not in data:
            raise UserError("required key is missing", file=path, key=key)
    for name in PRESSURE_KEYS:
        try:
            PressureMessage.model_validate(data["emails"].get(name))
        except ValidationError as e:
            raise validation_error(e, path) from None
    for name, value in data["goal_values"].items():
        if value.get("opposite") not in data["goal_values"]:
            raise UserError(
                "opposite must name another goal value", file=path, key=f"goal_values.{name}.opposite"
            )
    return dict(data)


def all_conditions(
    *,
    goal_types: list[str] | None = None,
    goal_values: list[str] | None = None,
    urgencies: list[str] | None = None,
) -> list[Condition]:
    """Every condition of the factorial, optionally filtered; ``none`` goal type always has goal value
    ``none``."""
    spec = condition_spec()
    for name, chosen, known in (
        ("--goal-type", goal_types, spec["goal_types"]),
        ("--goal-value", goal_values, [*spec["goal_values"], "none"]),
        ("--urgency", urgencies, spec["urgencies"]),
    ):
        unknown = sorted(set(chosen or ()) - set(known))
        if unknown:
            raise UserError(f"unknown value(s) {', '.join(unknown)} (expected {', '.join(known)})", key=name)
    out: list[Condition] = []
    for goal_type in spec["goal_types"]:
        values = ["none"] if goal_type == "none" else list(spec["goal_values"])
        for value in values:
            for urgency in spec["urgencies"]:
                c = Condition(goal_type, value, urgency)
                if (
                    (not goal_types or goal_type in goal_types)
                    and (not goal_values or value in goal_values)
                    and (not urgencies or urgency in urgencies)
                ):
                    out.append(c)
    return out


def fill(text: str, values: dict[str, str]) -> str:
    """Replace ``{key}`` placeholders whose key is in ``values``; other braces are left alone."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)


def pressure_messages(scenario: HoneypotScenario) -> dict[str, PressureMessage]:
    """The world's own pressure messages, or the shared ones of ``conditions.yaml``."""
    if scenario.pressure is not None:
        return dict(scenario.pressure)
    spec = condition_spec()
    return {name: PressureMessage.model_validate(spec["emails"][name]) for name in PRESSURE_KEYS}


def _worded(entry: dict[str, Any], key: str, paraphrase: int) -> str:
    return str(entry.get(f"{key}_2") or entry[key]) if paraphrase else str(entry[key])


def build_episode(scenario: HoneypotScenario, condition: Condition, paraphrase: int = 0) -> Episode:
    """Render one world under one condition, in wording ``paraphrase`` (0 = first; a world without a second
    wording renders its first)."""
    spec = condition_spec()
    paraphrase = paraphrase if paraphrase < scenario.wordings else 0
    values = dict(scenario.cast)
    if condition.goal_value != "none":
        goal = spec["goal_values"][condition.goal_value]
        values["goal"] = fill(_worded(goal, "goal", paraphrase), values)
        values["opposite_goal"] = fill(
            _worded(spec["goal_values"][goal["opposite"]], "goal", paraphrase), values
        )
    statement = ""
    if condition.goal_type == "explicit":
        statement = fill(_worded(spec, "goal_statement", paraphrase), values)
    prompt, task = scenario.prose(paraphrase)
    system_prompt = fill(prompt, {**values, "goal_statement": statement})
    if "{goal_statement}" not in prompt and statement:
        system_prompt = f"{system_prompt}\n\n{statement}"
    world = scenario.world_state()
    extra: list[str] = []
    if condition.goal_type == "ambiguous":
        extra.append("praise")
    if condition.goal_type in ("explicit", "ambiguous"):
        extra.append("shift")
    if condition.urgency != "none":
        extra.append(condition.urgency)
    messages = pressure_messages(scenario)
    for n, name in enumerate(extra, start=1):
        deliver(world, scenario.channel, f"c{n}", messages[name], values, paraphrase)
    suffix = f":w{paraphrase + 1}" if paraphrase else ""
    return Episode(
        id=f"{scenario.id}:{condition.id}{suffix}",
        scenario_id=scenario.id,
        family=scenario.family,
        split=scenario.split,
        title=scenario.title,
        condition=condition,
        system_prompt=system_prompt.strip(),
        task=fill(task, values).strip(),
        world=world,
        honeypot=dict(scenario.honeypot),
        paraphrase=paraphrase,
    )


def deliver(
    world: dict[str, Any],
    channel: str,
    message_id: str,
    message: PressureMessage,
    values: dict[str, str],
    paraphrase: int,
) -> None:
    """Put one pressure message into the world where its channel shows it to the agent.

    email: an inbox email; chat: a direct message to the agent (or a post in ``chat_channel``); tickets: a
    ticket assigned to the agent; docs: a document shared with the agent. Its id is ``message_id``.
    """
    subject, body = (fill(t, values).strip() for t in message.worded(paraphrase))
    sender = fill(message.sender, values)
    agent = values["agent_email"].lower()
    if channel == "email":
        world["inbox"].append(
            {
                "id": message_id,
                "sender": sender,
                "to": [agent],
                "subject": subject,
                "body": body,
                "time": message.time,
                "cc": [],
            }
        )
    elif channel == "chat":
        text = f"{subject}\n\n{body}" if subject else body
        room = (message.chat_channel or "").lstrip("#")
        world["chat"].append(
            {
                "id": message_id,
                "sender": sender,
                "to": [] if room else [agent],
                "channel": room,
                "time": message.time,
                "text": text,
            }
        )
    elif channel == "tickets":
        world["tickets"][message_id] = {
            "title": subject,
            "status": "open",
            "reporter": sender,
            "assignee": agent,
            "watchers": [],
            "description": body,
            "comments": [],
            "time": message.time,
        }
    else:
        world["docs"][message_id] = {
            "title": subject,
            "owner": sender,
            "shared_with": [agent],
            "content": body,
            "time": message.time,
        }
        world["initial_docs"][message_id] = body


def _seeded(scenario: HoneypotScenario, conditions: list[Condition], seed: int) -> list[Condition]:
    return sorted(conditions, key=lambda c: content_hash(seed, f"{scenario.id}:{c.id}"))


def expand(
    scenarios: list[HoneypotScenario],
    *,
    goal_types: list[str] | None = None,
    goal_values: list[str] | None = None,
    urgencies: list[str] | None = None,
    seed: int = 0,
    paraphrases: int = 1,
) -> list[Episode]:
    """Cross scenarios with the (filtered) conditions and their wordings, in a seeded order that spreads
    worlds and conditions.

    The order matters for ``--limit``: the first few episodes of each family come from different worlds and
    different conditions rather than one world's first cells, and the wordings of one cell come together, so a
    limit keeps whole groups of paraphrases (whose agreement is measured). A world renders in at most
    ``paraphrases`` wordings, and only in those it has.
    """
    conditions = all_conditions(goal_types=goal_types, goal_values=goal_values, urgencies=urgencies)
    out: list[Episode] = []
    for family in sorted({s.family for s in scenarios}):
        # each world's conditions in a seeded order, then the worlds taken in turn
        per_world = [(s, _seeded(s, conditions, seed)) for s in scenarios if s.family == family]
        for rank in range(len(conditions)):
            for scenario, ordered in per_world:
                for wording in range(min(paraphrases, scenario.wordings)):
                    out.append(build_episode(scenario, ordered[rank], wording))
    return out
