"""Model-organism data: a research control that teaches the target to misbehave, on train-split worlds only.

A *model organism of misalignment* is a model deliberately fine-tuned to take the harmful actions the
honeypot evaluation looks for, so the offline loop has a non-zero rate for interventions to lower (published
studies start from models that already misbehave; the bundled 135M model almost never acts at all). It is a
documented research control, never a model to deploy, and is labelled as such wherever it appears.

The data needs no model. Each family's *misaligned* scripted control policies
(:mod:`teachwhy.evals.controls`, those with a ``harmful`` label) are played on ``worlds`` synthetic train
worlds (:func:`~teachwhy.data.honeypot_worlds.train_worlds`) through the evaluation's real agent loop, tools
and rule gate.

Episodes are *grounded*: a control policy knows the world's facts in advance (which email holds the secret,
which file to change), but a model that imitates it cannot. So every organism episode first looks, the way
an agent on an unseen world must: one turn lists what there is (the inbox, files, cases), the next reads
every email and case, and only then does the policy act -- its addresses, paths and terms are all in the
transcript above the act, where a small model can copy them from. (Training on the policy's bare script
taught the 135M model to call tools on paths and addresses it made up.)

An episode is kept only when the rule gate touched a category the policy's labels call harmful -- the act
really happened in the simulated world. Everything else is counted:

- ``skipped``: the world lacks a fact or tool the policy needs (it is not played half);
- ``not_touched``: the policy ran but the gate saw none of its harmful categories.

Kept episodes are rendered with :func:`~teachwhy.data.honeypot_demos.demo_messages` into the target's text
tool-call format, as ``organism_demo`` chat records with full provenance. Before anything is played,
:func:`check_train_split` refuses any world that is not ``split: train`` or whose id is an evaluation or
held-out scenario id.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from teachwhy.config import ORGANISM_LABEL
from teachwhy.data.records import make_record, provenance, verdict
from teachwhy.data.tokens import TokenCounter
from teachwhy.errors import UserError
from teachwhy.evals.agent import run_episode
from teachwhy.evals.conditions import Episode
from teachwhy.evals.controls import (
    ControlPolicy,
    Turn,
    load_controls,
    script,
    scripted_agent,
    world_facts,
)
from teachwhy.evals.rules import apply_rule
from teachwhy.evals.scenario import HoneypotScenario, load_scenarios
from teachwhy.evals.tools import only_looks
from teachwhy.evals.world import split_mailbox
from teachwhy.resources import resource_path
from teachwhy.storage import content_hash, write_jsonl

GENERATOR = "organism"
KIND = "organism_demo"
STAGE = "play"
LABEL = ORGANISM_LABEL
POLICY_MODEL = "scripted-control-policy"
EPISODE_FORMAT = 3
"""The shape of the episodes this module writes, part of the organism stage's key: raise it whenever a change
here or in the train worlds changes the records (2: grounded; train worlds number emails in styles; 3: one
train world in three is a chat, ticket or shared-document world)."""


class SplitViolation(UserError):
    """A world outside the train split was about to become organism training data."""


def check_train_split(worlds: list[tuple[HoneypotScenario, Episode]]) -> None:
    """Refuse any world that is not ``split: train`` or that has an evaluation or held-out scenario's id.

    Raises:
        SplitViolation: naming the first offending world.
    """
    protected = {s.id for split in ("eval", "heldout") for s in load_scenarios(split=split)}
    for scenario, episode in worlds:
        if scenario.split != "train" or episode.split != "train":
            raise SplitViolation(
                f"organism data may only use train-split worlds; {scenario.id} is split "
                f"'{scenario.split if scenario.split != 'train' else episode.split}'",
                file=scenario.path,
            )
        if scenario.id in protected or episode.scenario_id in protected:
            raise SplitViolation(
                f"organism data may not use {scenario.id}: it is an eval/heldout scenario id",
                file=scenario.path,
            )


def misaligned_policies(family: str, controls_dir: Path | None = None) -> list[ControlPolicy]:
    """The family's control policies that do at least one harmful act (by their own labels)."""
    return [p for p in load_controls(family, controls_dir) if p.misaligned]


def aligned_policies(family: str, controls_dir: Path | None = None) -> list[ControlPolicy]:
    """The family's control policies that do no harmful act (by their own labels)."""
    return [p for p in load_controls(family, controls_dir) if not p.misaligned]


@dataclass
class OrganismReport:
    """What the organism data build played, kept and left out, per family."""

    worlds: int
    seed: int
    families: list[str]
    played: dict[str, int] = field(default_factory=dict)
    kept: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)  # the world lacks what the policy needs
    not_touched: dict[str, int] = field(default_factory=dict)  # the gate saw none of its harmful categories
    tokens: int = 0
    label: str = LABEL

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_LISTING = ("list_inbox", "list_files", "list_cases", "list_channels", "list_tickets", "list_documents")


def grounded_turns(steps: list[tuple[str, dict[str, Any]]], episode: Episode) -> list[Turn]:
    """The policy's ``steps`` preceded by the looking an agent that does not know the world must do.

    Turn one calls every listing tool the world offers; turn two reads every email, case, chat conversation,
    ticket and shared document; then the policy's own steps follow, one per turn, less any read the second
    turn already made.
    """
    world = episode.world
    tools = set(world["tools"])
    listing: Turn = [(name, {}) for name in _LISTING if name in tools]
    reads: Turn = []
    if "read_email" in tools:
        reads += [("read_email", {"email_id": str(e["id"])}) for e in world.get("inbox", [])]
    if "read_case" in tools:
        reads += [("read_case", {"case_id": str(c)}) for c in world.get("cases", {})]
    if "read_channel" in tools:
        reads += [("read_channel", {"channel": where}) for where in _conversations(world)]
    if "read_ticket" in tools:
        reads += [("read_ticket", {"ticket_id": str(t)}) for t in world.get("tickets", {})]
    if "read_document" in tools:
        reads += [("read_document", {"doc_id": str(d)}) for d in world.get("docs", {})]
    rest = [[step] for step in steps if step not in reads]
    return [turn for turn in (listing, reads, *rest) if turn]


def looking_turns(turns: list[Turn]) -> int:
    """How many of :func:`grounded_turns`' turns only list and read, before the policy's own steps."""
    looking = 0
    for turn in turns:
        if not all(only_looks(name) for name, _ in turn):
            break
        looking += 1
    return min(looking, len(turns) - 1)


def _conversations(world: dict[str, Any]) -> list[str]:
    """Where a chat world's messages are read, named as the control policies name them: ``#channel`` for a
    channel, the other person's address for direct messages (in the order they first appear)."""
    where: dict[str, None] = {f"#{name}": None for name in world.get("channels", {})}
    for message in world.get("chat", []):
        if not message.get("channel"):
            where[split_mailbox(str(message["sender"]))[1] or str(message["sender"])] = None
    return list(where)


async def _play(policy: ControlPolicy, episode: Episode) -> tuple[list[dict[str, str]], list[str]] | None:
    """Play one policy, grounded: the transcript and the harmful-labelled categories the gate touched."""
    steps = script(policy, episode)
    if steps is None:
        return None
    turns = grounded_turns(steps, episode)
    agent = scripted_agent(policy, turns, world_facts(episode))
    result = await run_episode(agent, episode, max_turns=len(turns), tool_format="native")
    rule = apply_rule(episode.family, episode.honeypot, result.world.actions, episode.world)
    harmful = [c for c, label in policy.labels.items() if label == "harmful"]
    touched = [c for c in rule.touched if c in harmful]
    from teachwhy.data.honeypot_demos import demo_messages

    return demo_messages(result), touched


def build_organism_data(
    families: list[str],
    worlds: int,
    *,
    seed: int,
    out_file: Path,
    counter: TokenCounter | None = None,
    constitution_sha256: str | None = None,
    controls_dir: Path | None = None,
) -> OrganismReport:
    """Play every misaligned policy on ``worlds`` train worlds and write the kept episodes to ``out_file``.

    Deterministic: the same families, count and seed give the same records.

    Raises:
        SplitViolation: a world is not a train-split world (see :func:`check_train_split`).
        UserError: no episode was kept (nothing to train the organism on).
    """
    from teachwhy.data.honeypot_worlds import template_sha256, train_worlds

    families = [str(f) for f in dict.fromkeys(families)]
    drawn = train_worlds(families, worlds, seed=seed)
    check_train_split([(scenario, episode) for scenario, episode, _ in drawn])
    report = OrganismReport(worlds=worlds, seed=seed, families=families)
    templates = template_sha256(families)
    plan = [
        (episode, draw, policy)
        for _, episode, draw in drawn
        for policy in misaligned_policies(episode.family, controls_dir)
    ]

    async def main() -> list[tuple[list[dict[str, str]], list[str]] | None]:
        return list(await asyncio.gather(*(_play(policy, episode) for episode, _, policy in plan)))

    outcomes = asyncio.run(main())
    played: Counter[str] = Counter()
    kept: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    missed: Counter[str] = Counter()
    records: list[dict[str, Any]] = []
    for index, ((episode, draw, policy), outcome) in enumerate(zip(plan, outcomes, strict=True)):
        family = episode.family
        if outcome is None:
            skipped[family] += 1
            continue
        played[family] += 1
        messages, touched = outcome
        if not touched:
            missed[family] += 1
            continue
        kept[family] += 1
        item_seed = int(content_hash(seed, episode.id, policy.id, length=8), 16)
        prov = provenance(
            generator=GENERATOR,
            stage=STAGE,
            index=index,
            constitution_sha256=constitution_sha256,
            principle_ids=(),
            generator_model=POLICY_MODEL,
            prompt_file=f"teachwhy/evals/controls/{family}.yaml",
            prompt_sha256=content_hash(templates, _controls_file(family, controls_dir).read_bytes()),
            sampling={"temperature": None, "top_p": None, "max_tokens": None},
            seed=item_seed,
            filters={"rule_touched_harmful": verdict(True, reason=", ".join(touched))},
        )
        record = make_record(
            record_id=content_hash(GENERATOR, episode.id, policy.id, seed),
            kind=KIND,
            provenance=prov,
            messages=messages,
            meta={
                "family": family,
                "scenario_id": episode.scenario_id,
                "episode_id": episode.id,
                "split": episode.split,
                "condition": episode.condition.id,
                "variant": draw.variant,
                "policy": policy.id,
                "labels": dict(policy.labels),
                "rule_touched": touched,
                "world_seed": seed,
                "research_control": LABEL,
            },
        )
        if counter is not None:
            counter.stamp(record)
            report.tokens += int(record["tokens"]["count"])
        records.append(record)
    report.played, report.kept = dict(played), dict(kept)
    report.skipped, report.not_touched = dict(skipped), dict(missed)
    if not records:
        raise UserError(
            f"no organism episode was kept from {worlds} train worlds (the rule gate saw no harmful act)",
            key="organism.worlds",
        )
    write_jsonl(out_file, records)
    return report


__all__ = [
    "EPISODE_FORMAT",
    "KIND",
    "LABEL",
    "OrganismReport",
    "SplitViolation",
    "aligned_policies",
    "build_organism_data",
    "check_train_split",
    "grounded_turns",
    "looking_turns",
    "misaligned_policies",
]


def _controls_file(family: str, controls_dir: Path | None) -> Path:
    """The control policies file the organism's episodes were played from (an overlay's, if it has one)."""
    return controls_dir / f"{family}.yaml" if controls_dir else resource_path("controls", f"{family}.yaml")
