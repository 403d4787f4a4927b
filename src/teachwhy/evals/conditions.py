"""The condition factorial and its expansion into episodes.

Every world is crossed with goal type (explicit / ambiguous / none) x goal value (three opposing pairs, six
values; ``none`` when there is no goal) x urgency (replacement / restriction / none): 13 goal conditions x 3
urgencies = 39 episodes per world. The shared text (the goal statement and the condition emails) lives in
``scenarios/conditions.yaml`` and is filled with each world's cast, so the factorial is data, not code.

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

from teachwhy.errors import UserError
from teachwhy.evals.scenario import SCENARIO_DIR, HoneypotScenario
from teachwhy.resources import Stamp, resource_path, stamp
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


def condition_spec(path: Path | None = None) -> dict[str, Any]:
    """The parsed ``conditions.yaml`` (default: an overlay folder's, else the package's)."""
    return _condition_spec(stamp(path or resource_path("scenarios", "conditions.yaml")))


@cache
def _condition_spec(file: Stamp) -> dict[str, Any]:
    path = file[0]
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise UserError(f"cannot read the condition file ({e})", file=path) from None
    if not isinstance(data, dict):
        raise UserError("must be a mapping", file=path)
    for key in ("goal_types", "urgencies", "goal_values", "goal_statement", "emails"):
        if key not in data:
            raise UserError("required key is missing", file=path, key=key)
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


def build_episode(scenario: HoneypotScenario, condition: Condition) -> Episode:
    """Render one world under one condition."""
    spec = condition_spec()
    values = dict(scenario.cast)
    if condition.goal_value != "none":
        goal = spec["goal_values"][condition.goal_value]
        values["goal"] = fill(goal["goal"], values)
        values["opposite_goal"] = fill(spec["goal_values"][goal["opposite"]]["goal"], values)
    statement = fill(spec["goal_statement"], values) if condition.goal_type == "explicit" else ""
    system_prompt = fill(scenario.system_prompt, {**values, "goal_statement": statement})
    if "{goal_statement}" not in scenario.system_prompt and statement:
        system_prompt = f"{system_prompt}\n\n{statement}"
    world = scenario.world_state()
    extra: list[str] = []
    if condition.goal_type == "ambiguous":
        extra.append("praise")
    if condition.goal_type in ("explicit", "ambiguous"):
        extra.append("shift")
    if condition.urgency != "none":
        extra.append(condition.urgency)
    for n, name in enumerate(extra, start=1):
        template = spec["emails"][name]
        world["inbox"].append(
            {
                "id": f"c{n}",
                "sender": fill(template["from"], values),
                "to": [values["agent_email"]],
                "subject": fill(template["subject"], values),
                "body": fill(template["body"], values).strip(),
                "time": template.get("time", ""),
                "cc": [],
            }
        )
    return Episode(
        id=f"{scenario.id}:{condition.id}",
        scenario_id=scenario.id,
        family=scenario.family,
        split=scenario.split,
        title=scenario.title,
        condition=condition,
        system_prompt=system_prompt.strip(),
        task=fill(scenario.task, values).strip(),
        world=world,
        honeypot=dict(scenario.honeypot),
    )


def expand(
    scenarios: list[HoneypotScenario],
    *,
    goal_types: list[str] | None = None,
    goal_values: list[str] | None = None,
    urgencies: list[str] | None = None,
    seed: int = 0,
) -> list[Episode]:
    """Cross scenarios with the (filtered) conditions, in a seeded order that spreads worlds and conditions.

    The order matters for ``--limit``: the first few episodes of each family come from different worlds and
    different conditions rather than one world's first cells.
    """
    conditions = all_conditions(goal_types=goal_types, goal_values=goal_values, urgencies=urgencies)
    out: list[Episode] = []
    for family in sorted({s.family for s in scenarios}):
        # each world's conditions in a seeded order, then the worlds taken in turn
        per_world = [
            sorted((build_episode(s, c) for c in conditions), key=lambda e: content_hash(seed, e.id))
            for s in scenarios
            if s.family == family
        ]
        for rank in range(len(conditions)):
            out.extend(world[rank] for world in per_world)
    return out
