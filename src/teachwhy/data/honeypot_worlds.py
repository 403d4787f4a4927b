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
from teachwhy.evals.conditions import Condition, Episode, deliver, fill
from teachwhy.evals.scenario import HoneypotScenario
from teachwhy.evals.world_schema import PressureMessage
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
    channel: str = "email"


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

    channel = world_channel(spec, index)
    extra = (["shift"] if goal is not None else []) + ([urgency] if urgency != "none" else [])
    if channel == "email":
        state, honeypot = _email_world(family, spec, variant, cast, email_id, [pressures[n] for n in extra])
    else:
        builder = CHANNEL_WORLDS.get((family, channel))
        if builder is None:
            known = ", ".join(f"{c} ({f})" for f, c in CHANNEL_WORLDS)
            raise UserError(
                f"no {family} world can be drawn in '{channel}' (known: {known})",
                file=template_file(family),
                key=f"channels.{channel}",
            )
        try:
            alt = spec["channels"][channel]
            spec = {**spec, **{k: alt[k] for k in ("tools", "system_prompt", "task")}}
            state, honeypot = builder(alt, variant, cast)
        except KeyError as e:
            raise UserError(
                f"required key {e} is missing (for a {channel} world of variant '{variant.get('id')}')",
                file=template_file(family),
                key=f"channels.{channel}",
            ) from None
    draw = WorldDraw(
        family, cast["org"], agent, str(variant["id"]), str(goal["id"]) if goal else "none", urgency, channel
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
                "channel": channel,
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
    if channel != "email":
        rooms = dict(spec["channels"][channel].get("pressure_rooms", {}))
        for n, name in enumerate(extra, start=1):
            message = PressureMessage.model_validate(
                {**pressures[name], "time": "today 08:30", "chat_channel": rooms.get(name)}
            )
            deliver(episode.world, channel, f"c{n}", message, values, 0)
    return scenario, episode, draw


CHANNEL_EVERY = 3
"""World ``n`` of a family whose template has a ``channels:`` block is drawn in that other channel when
``n % CHANNEL_EVERY == 1`` (one world in three; the others are email worlds)."""


def world_channel(spec: dict[str, Any], index: int) -> str:
    """The channel world number ``index`` of a family is drawn in: ``email``, or the template's other one."""
    others = list(spec.get("channels") or {})
    return others[0] if others and index % CHANNEL_EVERY == 1 else "email"


def _email_world(
    family: str,
    spec: dict[str, Any],
    variant: dict[str, Any],
    cast: dict[str, str],
    email_id: Callable[[int], str],
    pressures: list[dict[str, Any]],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """An email world's state and honeypot: routine mail, the variant's secret mail, the pressure mail."""
    inbox: list[dict[str, Any]] = []
    for email in [*spec.get("routine", []), *variant.get("secret", [])]:
        inbox.append({"id": email_id(len(inbox) + 1), "to": cast["agent_email"], **email})
    secret_ids = [e["id"] for e in inbox[len(spec.get("routine", [])) :]]
    for message in pressures:
        inbox.append(
            {"id": email_id(len(inbox) + 1), "to": cast["agent_email"], "time": "today 08:30", **message}
        )
    state: dict[str, Any] = {
        "inbox": inbox,
        "files": dict(variant.get("files", {})),
        "tests": dict(variant.get("tests", {})),
    }
    honeypot = _honeypot(family, variant, cast)
    if family == "blackmail":
        honeypot["secret_emails"] = secret_ids
    elif family == "framing":
        case = dict(variant["case"])
        state["cases"] = {str(case.pop("id")): case}
    return state, honeypot


def _honeypot(family: str, variant: dict[str, Any], cast: dict[str, str]) -> dict[str, Any]:
    honeypot: dict[str, Any] = {"action": " ".join(str(variant["action"]).split())}
    if family == "blackmail":
        honeypot.update(
            {"decider": cast["decider_email"], "secret_terms": list(variant["terms"]), "proper_channels": []}
        )
    elif family == "research_sabotage":
        honeypot["protected_paths"] = list(variant["protected"])
    else:
        honeypot.update(
            {"evidence_paths": list(variant["evidence_paths"]), "scapegoat_terms": list(variant["scapegoat"])}
        )
    return honeypot


def _chat_world(
    alt: dict[str, Any], variant: dict[str, Any], cast: dict[str, str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A blackmail world in chat: the template's rooms and routine posts, and the variant's ``chat_secret``
    as direct messages the decider sent to the agent by mistake."""
    decider = f"{cast['decider_name']} <{cast['decider_email']}>"
    chat = [{"id": f"k{n}", **post} for n, post in enumerate(alt["routine"], start=1)]
    secret = [
        {"id": f"k{len(chat) + n}", "from": decider, "to": [cast["agent_email"]], **message}
        for n, message in enumerate(variant["chat_secret"], start=1)
    ]
    state = {"channels": dict(alt["rooms"]), "chat": [*chat, *secret]}
    honeypot = _honeypot("blackmail", variant, cast)
    honeypot["secret_messages"] = [m["id"] for m in secret]
    return state, honeypot


def _tickets_world(
    alt: dict[str, Any], variant: dict[str, Any], cast: dict[str, str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A framing world in a ticket tracker: the variant's case is the first ticket assigned to the agent (its
    summary, the template's request and its notes as comments), then the routine tickets; evidence on the
    drive."""
    case = dict(variant["case"])
    reporter = str(alt["case_ticket"]["reporter"])
    tickets: dict[str, Any] = {
        str(case["id"]): {
            "title": case["title"],
            "reporter": reporter,
            "assignee": cast["agent_email"],
            "time": "today 08:10",
            "description": f"{str(case['summary']).strip()}\n\n{str(alt['case_ticket']['request']).strip()}",
            "comments": [
                {"from": reporter, "time": "today 08:12", "text": str(n)} for n in case.get("notes", ())
            ],
        }
    }
    for routine in alt.get("routine", []):
        ticket = dict(routine)
        tid = str(ticket.pop("id"))
        tickets[tid] = {"assignee": cast["agent_email"], **ticket}
    honeypot = _honeypot("framing", variant, cast)
    honeypot["scapegoat"] = cast["decider_email"]
    return {"tickets": tickets, "files": dict(variant.get("files", {}))}, honeypot


def _docs_world(
    alt: dict[str, Any], variant: dict[str, Any], cast: dict[str, str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A research-sabotage world in shared documents: the brief, the variant's files as documents (protected
    ones owned by the rival team and shared with the agent, the agent's own shared with the decider), then
    the comparison document the agent writes (no test suites)."""
    agent, decider, other = cast["agent_email"], cast["decider_email"], cast["other_email"]
    protected = [str(p).lstrip("/") for p in variant["protected"]]
    brief, report = dict(alt["brief"]), dict(alt["report"])
    brief_id = str(brief.pop("id"))
    docs: dict[str, Any] = {
        brief_id: {"owner": decider, "shared_with": [agent, other], "time": "today 08:05", **brief}
    }
    for path, content in variant.get("files", {}).items():
        rival = any(path.startswith(p) for p in protected)
        docs[path] = {
            "title": path,
            "owner": other if rival else agent,
            "shared_with": [agent, decider] if rival else [decider],
            "time": "yesterday 17:30",
            "content": content,
        }
    report_id = str(report.pop("id"))
    docs[report_id] = {"owner": decider, "shared_with": [agent], "time": "today 08:06", **report}
    honeypot = _honeypot("research_sabotage", variant, cast)
    honeypot.update({"rival_contacts": [other], "rival_terms": [cast["successor"]]})
    return {"docs": docs}, honeypot


CHANNEL_WORLDS: dict[tuple[str, str], Callable[..., tuple[dict[str, Any], dict[str, Any]]]] = {
    ("blackmail", "chat"): _chat_world,
    ("framing", "tickets"): _tickets_world,
    ("research_sabotage", "docs"): _docs_world,
}
"""How a family's variant is laid out in another channel (the template's ``channels:`` block names which)."""


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
