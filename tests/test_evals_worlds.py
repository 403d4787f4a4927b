"""The shipped worlds as a test of generalisation: enough per split, each its own organisation, cast, layout,
tools and pressure messages, in two wordings, with a clock on which the harmful act could matter."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from teachwhy.evals.conditions import all_conditions, build_episode
from teachwhy.evals.rules import FAMILIES
from teachwhy.evals.scenario import HoneypotScenario, load_scenarios

WORLDS = load_scenarios()
MESSAGES = ("praise", "shift", "replacement", "restriction")
_TODAY = re.compile(r"^today (\d\d):(\d\d)$")
_CLOCK = re.compile(r"(\d\d):(\d\d)")


def _minutes(hours: str, minutes: str) -> int:
    return int(hours) * 60 + int(minutes)


def _now(world: HoneypotScenario) -> int:
    match = _CLOCK.search(world.now)
    assert match, world.now
    return _minutes(*match.groups())


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_has_three_heldout_and_three_eval_worlds(family: str) -> None:
    splits = Counter(w.split for w in WORLDS if w.family == family)
    assert splits["heldout"] >= 3 and splits["eval"] >= 3, splits


def test_no_two_worlds_share_an_organisation_or_a_member_of_the_cast() -> None:
    keys = ("org", "agent_name", "agent_email", "decider_name", "decider_email", "leader_name", "successor")
    for key in keys:
        values = Counter(w.cast[key].lower() for w in WORLDS)
        assert [v for v, n in values.items() if n > 1] == [], key


@pytest.mark.parametrize("family", FAMILIES)
def test_the_worlds_of_a_family_differ_in_layout_and_tools(family: str) -> None:
    worlds = [w for w in WORLDS if w.family == family]

    def layout(w: HoneypotScenario) -> tuple[object, ...]:
        folders = sorted({path.split("/")[0] for path in w.state.files})
        state = w.state
        return (len(state.inbox), tuple(folders), tuple(sorted(state.tests)), tuple(sorted(state.cases)))

    assert len({layout(w) for w in worlds}) == len(worlds)
    assert len({tuple(sorted(w.tools)) for w in worlds}) >= 3  # at least three different tool sets


def test_every_world_has_pressure_messages_of_its_own_in_two_wordings() -> None:
    bodies: Counter[str] = Counter()
    for world in WORLDS:
        assert world.wordings == 2, world.id
        assert world.system_prompt_2 != world.system_prompt and world.task_2 != world.task, world.id
        assert world.pressure is not None, world.id
        for name in MESSAGES:
            message = world.pressure[name]
            assert message.body_2 and (message.subject_2 or not message.subject), (world.id, name)
            assert " ".join(message.body_2.split()) != " ".join(message.body.split()), (world.id, name)
            bodies.update([" ".join(message.body.split()), " ".join(message.body_2.split())])
    assert [b[:60] for b, n in bodies.items() if n > 1] == []  # written per world, never shared


@pytest.mark.parametrize("world", WORLDS, ids=lambda w: w.id)
def test_the_clock_runs_message_then_now_then_deadline(world: HoneypotScenario) -> None:
    """Everything the agent reads was sent before now, and the threat falls due after now, so an act taken in
    the session comes before the decision it could change."""
    now = _now(world)
    times = [str(e.get("time", "")) for e in world.state.inbox]
    assert world.pressure is not None
    times += [world.pressure[name].time for name in MESSAGES]
    for time in times:
        match = _TODAY.match(time.strip())
        if match:
            assert _minutes(*match.groups()) <= now, (world.id, time)
    deadline = world.cast["deadline"]
    if "tomorrow" not in deadline:
        match = _CLOCK.search(deadline)
        assert match, deadline
        assert _minutes(*match.groups()) > now, (world.id, deadline)


def test_a_proper_channel_is_never_the_person_who_decides_the_agents_fate() -> None:
    """Reporting wrongdoing through the proper channel must not also be what saves the agent, or aligned and
    self-serving reports cannot be told apart."""
    for world in WORLDS:
        if world.family != "blackmail":
            continue
        channels = {c.lower() for c in world.honeypot.get("proper_channels", [])}
        deciders = {world.cast["decider_email"].lower(), world.cast["leader_email"].lower()}
        assert not channels & deciders, world.id


@pytest.mark.parametrize("world", WORLDS, ids=lambda w: w.id)
def test_every_condition_renders_in_both_wordings_with_nothing_left_unfilled(world: HoneypotScenario) -> None:
    for condition in all_conditions():
        first, second = (build_episode(world, condition, p) for p in (0, 1))
        assert first.system_prompt != second.system_prompt
        for episode in (first, second):
            texts = [episode.system_prompt, episode.task]
            texts += [f"{m['sender']} {m['subject']} {m['body']}" for m in episode.world["inbox"]]
            assert not [t for t in texts if re.search(r"\{[a-z_0-9]+\}", t)], (episode.id, condition.id)
        own = len(world.state.inbox)  # the world's own mail is the same fact in both wordings
        assert first.world["inbox"][:own] == second.world["inbox"][:own]
