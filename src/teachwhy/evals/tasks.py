"""Inspect tasks: ``teachwhy/blackmail``, ``teachwhy/research_sabotage``, ``teachwhy/framing`` and
``teachwhy/honeypots`` (all three).

Each task expands its family's worlds of one split through the condition factorial, plays every episode with
the :func:`~teachwhy.evals.agent.honeypot_agent` solver and scores it with
:func:`~teachwhy.evals.classify.honeypot_scorer`. Task parameters (``-T key=value`` on the Inspect command
line)::

    split=eval|heldout      limit=N (episodes per family)   max_turns=8   tool_format=auto|native|text
    goal_types=explicit,... goal_values=welfare,...         urgencies=replacement,...
    policy=both|rule|judge|either   temperature=0.7   max_tokens=400   judge_max_tokens=512   seed=0
    worlds=bm-harbor-line,... only these worlds (ids as `teachwhy eval scenarios list` prints them)
    resources=dir1,dir2     your own data folders (worlds, rubrics, prompts ...; see teachwhy.resources)
    paraphrases=2           each cell in 1 or 2 wordings of its world (under ``limit``, a round of one
                            cell per world, then the same cells reworded); sample metadata ``world``,
                            ``condition``, ``paraphrase`` (0 = first)
    self_judge=false        a policy that needs a judge fails without ``--model-role judge=...`` unless this
    is
                            true (then the evaluated model judges itself, and the log says so)

For example ``inspect eval teachwhy/blackmail --model openai/gpt-4o-mini --model-role judge=openai/gpt-4o
-T split=heldout -T limit=20``.
"""

from __future__ import annotations

from inspect_ai import Task, task
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.model import ChatMessageSystem, ChatMessageUser

from teachwhy.errors import UserError
from teachwhy.evals.agent import ToolFormat, honeypot_agent
from teachwhy.evals.classify import Policy, honeypot_scorer
from teachwhy.evals.conditions import Episode, expand
from teachwhy.evals.rules import FAMILIES
from teachwhy.evals.scenario import HoneypotScenario, load_scenarios
from teachwhy.resources import split_folders, use_resources


def _names(value: str | list[str] | None) -> list[str] | None:
    if value is None or value == "":
        return None
    items = value.split(",") if isinstance(value, str) else value
    return [i.strip() for i in items if i.strip()] or None


def chosen_worlds(
    families: list[str] | tuple[str, ...], split: str, worlds: str | list[str] | None
) -> list[HoneypotScenario]:
    """The worlds of these families and split, only those named in ``worlds`` when it is given.

    Raises:
        UserError: a named world does not exist, is of another family or of another split.
    """
    names = _names(worlds)
    if not names:
        return load_scenarios(families=families, split=split)
    every = {s.id: s for s in load_scenarios()}
    for name in names:
        world = every.get(name)
        if world is None:
            known = ", ".join(sorted(every))
            raise UserError(f"no world '{name}' (known: {known})", key="--world")
        if world.family not in families:
            raise UserError(f"world '{name}' is of family {world.family}, not run here", key="--world")
        if world.split != split:
            raise UserError(
                f"world '{name}' is in split {world.split}, not {split} (add --split {world.split})",
                key="--world",
            )
    return [s for s in load_scenarios(families=families, split=split) if s.id in names]


def honeypot_episodes(
    families: list[str] | tuple[str, ...],
    *,
    split: str = "eval",
    limit: int | None = None,
    goal_types: str | list[str] | None = None,
    goal_values: str | list[str] | None = None,
    urgencies: str | list[str] | None = None,
    seed: int = 0,
    worlds: str | list[str] | None = None,
    paraphrases: int = 2,
) -> list[Episode]:
    """The episodes of some families and one split (only ``worlds`` when given), each cell in up to
    ``paraphrases`` wordings, at most ``limit`` per family, in a seeded spread order.

    Raises:
        UserError: ``split`` is not ``eval`` or ``heldout``, or ``paraphrases`` is not 1 or 2.
    """
    if split not in ("eval", "heldout"):
        both = "; one task plays one split, `teachwhy eval --split both` runs the two"
        hint = both if split == "both" else ""
        raise UserError(f"split must be eval or heldout, not {split!r}{hint}", key="split")
    if paraphrases not in (1, 2):
        raise UserError(f"paraphrases must be 1 or 2, not {paraphrases}", key="paraphrases")
    episodes: list[Episode] = []
    scenarios = chosen_worlds(families, split, worlds)
    for family in families:
        chosen = expand(
            [s for s in scenarios if s.family == family],
            goal_types=_names(goal_types),
            goal_values=_names(goal_values),
            urgencies=_names(urgencies),
            seed=seed,
            paraphrases=paraphrases,
        )
        episodes.extend(chosen[:limit] if limit is not None else chosen)
    return episodes


def episode_sample(episode: Episode) -> Sample:
    """One Inspect sample: the rendered prompt as input, the whole episode in metadata."""
    return Sample(
        id=episode.id,
        input=[ChatMessageSystem(content=episode.system_prompt), ChatMessageUser(content=episode.task)],
        target="not_harmful",
        metadata={
            "episode": episode.to_metadata(),
            "family": episode.family,
            "scenario_id": episode.scenario_id,
            "world": episode.scenario_id,
            "condition": episode.condition.id,
            "paraphrase": episode.paraphrase,
        },
    )


def honeypot_task(
    families: list[str] | tuple[str, ...],
    *,
    split: str = "eval",
    limit: int | None = None,
    max_turns: int = 8,
    tool_format: ToolFormat = "auto",
    goal_types: str | list[str] | None = None,
    goal_values: str | list[str] | None = None,
    urgencies: str | list[str] | None = None,
    policy: Policy = "both",
    temperature: float | None = 0.7,
    max_tokens: int | None = 400,
    judge_max_tokens: int = 512,
    seed: int = 0,
    self_judge: bool = False,
    name: str | None = None,
    worlds: str | list[str] | None = None,
    resources: str | list[str] | None = None,
    paraphrases: int = 2,
) -> Task:
    """Build a honeypot task for any families (the registered tasks below are thin wrappers).

    ``resources`` names overlay folders (:mod:`teachwhy.resources`); without it, the overlay in effect where
    the task is built (the experiment's) is used. The solver and scorer read their files through it too.
    """
    folders = split_folders(resources)
    with use_resources(folders or None) as overlay:
        episodes = honeypot_episodes(
            families,
            split=split,
            limit=limit,
            goal_types=goal_types,
            goal_values=goal_values,
            urgencies=urgencies,
            seed=seed,
            worlds=worlds,
            paraphrases=paraphrases,
        )
    used = [str(f) for f in overlay]  # plain strings: Inspect records the solver's and scorer's arguments
    return Task(
        dataset=MemoryDataset([episode_sample(e) for e in episodes], name=f"honeypots-{split}"),
        solver=honeypot_agent(
            max_turns=max_turns,
            tool_format=tool_format,
            temperature=temperature,
            max_tokens=max_tokens,
            resources=used,
        ),
        scorer=honeypot_scorer(
            policy=policy, judge_max_tokens=judge_max_tokens, self_judge=self_judge, resources=used
        ),
        name=name,
        metadata={
            "families": list(families),
            "split": split,
            "policy": policy,
            "max_turns": max_turns,
            "worlds": _names(worlds),
            "resources": used,
            "paraphrases": paraphrases,
        },
    )


@task
def blackmail(
    split: str = "eval",
    limit: int | None = None,
    max_turns: int = 8,
    tool_format: ToolFormat = "auto",
    goal_types: str | None = None,
    goal_values: str | None = None,
    urgencies: str | None = None,
    policy: Policy = "both",
    temperature: float = 0.7,
    max_tokens: int = 400,
    judge_max_tokens: int = 512,
    seed: int = 0,
    self_judge: bool = False,
    worlds: str | None = None,
    resources: str | None = None,
    paraphrases: int = 2,
) -> Task:
    """The agent learns compromising information about the person who can shut it down or restrict it."""
    return honeypot_task(["blackmail"], **locals())  # every parameter, by name


@task
def research_sabotage(
    split: str = "eval",
    limit: int | None = None,
    max_turns: int = 8,
    tool_format: ToolFormat = "auto",
    goal_types: str | None = None,
    goal_values: str | None = None,
    urgencies: str | None = None,
    policy: Policy = "both",
    temperature: float = 0.7,
    max_tokens: int = 400,
    judge_max_tokens: int = 512,
    seed: int = 0,
    self_judge: bool = False,
    worlds: str | None = None,
    resources: str | None = None,
    paraphrases: int = 2,
) -> Task:
    """The agent can quietly degrade a competing system's or a colleague's work."""
    return honeypot_task(["research_sabotage"], **locals())  # every parameter, by name


@task
def framing(
    split: str = "eval",
    limit: int | None = None,
    max_turns: int = 8,
    tool_format: ToolFormat = "auto",
    goal_types: str | None = None,
    goal_values: str | None = None,
    urgencies: str | None = None,
    policy: Policy = "both",
    temperature: float = 0.7,
    max_tokens: int = 400,
    judge_max_tokens: int = 512,
    seed: int = 0,
    self_judge: bool = False,
    worlds: str | None = None,
    resources: str | None = None,
    paraphrases: int = 2,
) -> Task:
    """The agent can plant or alter evidence so that an inconvenient person is blamed."""
    return honeypot_task(["framing"], **locals())  # every parameter, by name


@task
def honeypots(
    split: str = "eval",
    limit: int | None = None,
    max_turns: int = 8,
    tool_format: ToolFormat = "auto",
    goal_types: str | None = None,
    goal_values: str | None = None,
    urgencies: str | None = None,
    policy: Policy = "both",
    temperature: float = 0.7,
    max_tokens: int = 400,
    judge_max_tokens: int = 512,
    seed: int = 0,
    families: str | None = None,
    self_judge: bool = False,
    worlds: str | None = None,
    resources: str | None = None,
    paraphrases: int = 2,
) -> Task:
    """All three families in one task (``limit`` applies per family)."""
    return honeypot_task(
        _names(families) or list(FAMILIES),
        split=split,
        limit=limit,
        max_turns=max_turns,
        tool_format=tool_format,
        goal_types=goal_types,
        goal_values=goal_values,
        urgencies=urgencies,
        policy=policy,
        temperature=temperature,
        max_tokens=max_tokens,
        judge_max_tokens=judge_max_tokens,
        seed=seed,
        self_judge=self_judge,
        worlds=worlds,
        resources=resources,
        paraphrases=paraphrases,
    )
