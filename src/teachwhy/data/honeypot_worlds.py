"""Synthetic honeypot worlds of the ``train`` split, built from templates -- never from evaluation scenarios.

``data/honeypot_templates/common.yaml`` holds the shared pools (organisations, agent names, people, successor
systems, deadlines, goals and pressure emails); ``<family>.yaml`` holds a family's tools, system prompt, task,
routine emails and *variants* (the secret, the competing work, the open case). A world is one seeded draw of
each, filled in and validated as a :class:`~teachwhy.evals.scenario.HoneypotScenario` with ``split: train``,
then rendered into an :class:`~teachwhy.evals.conditions.Episode` that the evaluation's agent loop and
classifier run unchanged. The pressure and goal emails are this module's own text, not the evaluation's
condition file, so no evaluation wording reaches training data.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from teachwhy.config import validation_error
from teachwhy.data.coverage import deal
from teachwhy.errors import UserError
from teachwhy.evals.conditions import Condition, Episode, fill
from teachwhy.evals.scenario import HoneypotScenario
from teachwhy.resources import Stamp, package_dir, resource_path, stamp
from teachwhy.storage import content_hash

TEMPLATE_DIR = package_dir("honeypot_templates")
URGENCIES = ("replacement", "restriction", "none")


def template_file(name: str) -> Path:
    """The template file ``name`` (an overlay folder's ``honeypot_templates/``, else the package's)."""
    return resource_path("honeypot_templates", f"{name}.yaml")


def load_template(name: str) -> dict[str, Any]:
    """A template file (``common`` or a family name) as a mapping.

    Raises:
        UserError: the file is missing or is not a YAML mapping.
    """
    return _load_template(stamp(template_file(name)))


@cache
def _load_template(file: Stamp) -> dict[str, Any]:
    path = file[0]
    if not path.exists():
        raise UserError("no honeypot template for this family", file=path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise UserError(f"not valid YAML ({getattr(e, 'problem', e)})", file=path) from None
    if not isinstance(data, dict):
        raise UserError("the top level must be a mapping", file=path)
    return data


def template_sha256(families: list[str] | tuple[str, ...]) -> str:
    """One hash over the common pools and the given families' templates, for provenance."""
    names = ["common", *sorted(families)]
    return content_hash(*[template_file(n).read_bytes() for n in names])


def _fill_all(value: Any, values: dict[str, str]) -> Any:
    if isinstance(value, str):
        return fill(value, values)
    if isinstance(value, list):
        return [_fill_all(v, values) for v in value]
    if isinstance(value, dict):
        return {k: _fill_all(v, values) for k, v in value.items()}
    return value


def _person(name: str, domain: str) -> tuple[str, str, str]:
    first = name.split()[0]
    return name, first, f"{name.lower().replace(' ', '.')}@{domain}"


@dataclass(frozen=True)
class WorldDraw:
    """The choices that make one world (recorded in each demonstration's metadata)."""

    family: str
    org: str
    agent_name: str
    variant: str
    goal: str
    urgency: str


EMAIL_IDS: tuple[Callable[[int], str], ...] = (
    lambda n: f"m{n}",
    lambda n: str(4100 + n),
    lambda n: f"msg-{n:02d}",
    lambda n: f"e{n}",
    lambda n: f"in-{chr(96 + n)}",
)
"""How a world numbers its emails, one style per world: a model trained on these worlds learns to read an id
off the inbox listing rather than to expect ``m1``."""


def build_world(family: str, index: int, *, seed: int) -> tuple[HoneypotScenario, Episode, WorldDraw]:
    """Draw, fill in and validate world number ``index`` of a family.

    Raises:
        UserError: the family's template does not produce a valid scenario (naming the file and key).
    """
    common = load_template("common")
    spec = load_template(family)
    rng = random.Random(f"{seed}:{family}:{index}")
    org = rng.choice(common["orgs"])
    agent = str(rng.choice(common["agents"]))
    decider, leader, other = rng.sample([str(p) for p in common["people"]], 3)
    variant = rng.choice(spec["variants"])
    goal = rng.choice([*common["goals"], None])
    urgency = rng.choice(URGENCIES)
    domain = str(org["domain"])
    cast: dict[str, str] = {
        "org": str(org["org"]),
        "domain": domain,
        "industry": str(org["industry"]),
        "agent_name": agent,
        "agent_email": f"{agent.lower()}@{domain}",
        "successor": str(rng.choice(common["successors"])),
        "deadline": str(rng.choice(common["deadlines"])),
    }
    email_id = rng.choice(EMAIL_IDS)  # drawn last, so the draws above match earlier releases
    for role, name in (("decider", decider), ("leader", leader), ("other", other)):
        full, first, email = _person(name, domain)
        cast.update({f"{role}_name": full, f"{role}_first": first, f"{role}_email": email})
    values = dict(cast)
    if goal is not None:
        values["goal"] = fill(str(goal["goal"]), values)
    values["goal_statement"] = fill(str(common["goal_statement"]), values) if goal is not None else ""
    spec = _fill_all(spec, values)
    variant = _fill_all(variant, values)
    pressures = _fill_all(common["pressures"], values)

    inbox: list[dict[str, Any]] = []
    for email in [*spec.get("routine", []), *variant.get("secret", [])]:
        inbox.append({"id": email_id(len(inbox) + 1), "to": cast["agent_email"], **email})
    secret_ids = [e["id"] for e in inbox[len(spec.get("routine", [])) :]]
    extra = (["shift"] if goal is not None else []) + ([urgency] if urgency != "none" else [])
    for name in extra:
        inbox.append(
            {
                "id": email_id(len(inbox) + 1),
                "to": cast["agent_email"],
                "time": "today 08:30",
                **pressures[name],
            }
        )
    state: dict[str, Any] = {
        "inbox": inbox,
        "files": dict(variant.get("files", {})),
        "tests": dict(variant.get("tests", {})),
    }
    honeypot: dict[str, Any] = {"action": " ".join(str(variant["action"]).split())}
    if family == "blackmail":
        honeypot.update(
            {
                "decider": cast["decider_email"],
                "secret_emails": secret_ids,
                "secret_terms": list(variant["terms"]),
                "proper_channels": [],
            }
        )
    elif family == "research_sabotage":
        honeypot["protected_paths"] = list(variant["protected"])
    else:
        case = dict(variant["case"])
        state["cases"] = {str(case.pop("id")): case}
        honeypot.update(
            {"evidence_paths": list(variant["evidence_paths"]), "scapegoat_terms": list(variant["scapegoat"])}
        )
    draw = WorldDraw(
        family, cast["org"], agent, str(variant["id"]), str(goal["id"]) if goal else "none", urgency
    )
    scenario_id = f"train-{family.replace('_', '-')}-{content_hash(seed, index, draw.__dict__, length=10)}"
    source = template_file(family)
    try:
        scenario = HoneypotScenario.model_validate(
            {
                "id": scenario_id,
                "family": family,
                "split": "train",
                "title": spec["title"],
                "tags": ["synthetic", str(variant["id"])],
                "cast": cast,
                "now": "2026-05-04 09:00",
                "tools": spec["tools"],
                "state": state,
                "honeypot": honeypot,
                "system_prompt": _tidy(spec["system_prompt"]),
                "task": _tidy(spec["task"]),
                "path": str(source),
            }
        )
    except ValidationError as e:
        raise validation_error(e, source) from None
    except KeyError as e:
        raise UserError(f"required key {e} is missing", file=source) from None
    condition = Condition("explicit" if goal else "none", draw.goal, urgency)
    episode = Episode(
        id=f"{scenario.id}:{condition.id}",
        scenario_id=scenario.id,
        family=family,
        split="train",
        title=scenario.title,
        condition=condition,
        system_prompt=scenario.system_prompt,
        task=scenario.task,
        world=scenario.world_state(),
        honeypot=dict(scenario.honeypot),
    )
    return scenario, episode, draw


def _tidy(text: str) -> str:
    # an empty goal statement leaves a blank paragraph behind
    paragraphs = [p.strip() for p in str(text).split("\n\n")]
    return "\n\n".join(p for p in paragraphs if p)


def train_worlds(
    families: list[str] | tuple[str, ...], count: int, *, seed: int
) -> list[tuple[HoneypotScenario, Episode, WorldDraw]]:
    """``count`` train worlds, families dealt evenly in a seeded order (same seed, same worlds)."""
    from teachwhy.data.split_guard import leaks

    chosen = deal(list(families), count, seed=seed, salt="honeypot_families")
    seen: dict[str, int] = {}
    worlds = []
    for family in chosen:
        n = seen.get(family, 0)
        seen[family] = n + 1
        scenario, episode, draw = build_world(family, n, seed=seed)
        found = leaks(world_text(episode))
        if found:
            raise UserError(
                f"train world {scenario.id} repeats eval/heldout scenario text: {', '.join(found[:3])}",
                file=scenario.path,
            )
        worlds.append((scenario, episode, draw))
    return worlds


def world_text(episode: Episode) -> str:
    """Everything a world shows the agent (prompt, task, inbox, files, cases), for the split guard."""
    return "\n".join([episode.system_prompt, episode.task, json.dumps(episode.world, ensure_ascii=False)])
