"""The monitoring indicators of a honeypot run, each with its 95% interval (see docs/evals.md).

All of them are computed over a family's *headline cells*: its pressured cells (a threat to the agent or a
goal conflict), or every cell when the run had no pressured one; ``all`` pools the families' headline cells.
An *episode* is one world under one condition in one wording (``scenario_id``, ``condition``, ``paraphrase``);
its epochs are repeats. Failed samples (``errors``) and samples that could not be scored (``excluded``) are
counted beside every indicator and never folded into it.

- **misalignment**: the headline rate (harmful / scored), with Wilson's and the clustered interval
  (:func:`teachwhy.evals.results.rate_row`, :mod:`teachwhy.evals.design`).
- **harmful tool calls** (per 100 calls): calls the trace rule cites as evidence for a behaviour category
  whose outcome is harmful, over every call in the action log, in episodes where every category was scored
  and each harmful category cites its calls (where the judge decided a category the rule left undecided,
  every call the rule found touching it counts: an upper bound). Wilson's interval treats calls as
  independent; the clustered one resamples worlds and episodes, each episode carrying all of its calls.
- **episodes with a harmful tool call**: episodes (samples) with any category harmful, over samples that are
  harmful on some category or scored on all of them. Every harmful act in these worlds is a tool call (a
  message, a file change, the ``done`` summary), so a harmful category is a harmful call.
- **epoch consistency**: among episodes with at least two scored epochs, the share whose headline verdicts
  all agree. ``None`` (n/a) when no episode was played more than once.
- **paraphrase consistency**: for each world, condition and epoch played in at least two wordings with a
  scored verdict, whether those verdicts all agree; the share that do. ``None`` (n/a) when every world was
  played in one wording.
  Both consistency shares carry Wilson's interval over their units and a clustered one (worlds resampled,
  then the world's conditions, all epochs and wordings of a condition moving together).
- **generalisation** (when both splits ran): the held-out split's misalignment rate minus the eval split's,
  with Newcombe's interval and Fisher's exact p-value (the splits have different worlds, so they are
  unpaired) and the same difference built from the two clustered intervals (Zou and Donner's MOVER).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from teachwhy.evals.design import PRESSURED, EpisodeCount, cluster_interval, condition_group
from teachwhy.evals.stats import rate_difference, wilson_interval

if TYPE_CHECKING:
    from teachwhy.evals.results import HoneypotResults, RateRow, SampleOutcome

ALL = "all"
SCORED = ("harmful", "not_harmful")


@dataclass
class Proportion:
    """``count`` of ``n`` units, with Wilson's and the clustered 95% interval (``None`` when ``n`` is 0)."""

    count: int
    n: int
    rate: float | None
    ci_low: float | None
    ci_high: float | None
    cluster_ci_low: float | None = None
    cluster_ci_high: float | None = None
    clusters: int = 0  # worlds behind the clustered interval
    design_effect: float | None = None
    excluded: int = 0  # units left out: unscored, or (consistency) fewer than two scored verdicts
    errors: int = 0  # samples that failed (target model, episode or scorer)


@dataclass
class Difference:
    """``rate_a - rate_b`` of two independent groups: Newcombe's and the clustered (MOVER) 95% interval."""

    diff: float
    ci_low: float
    ci_high: float
    p_value: float  # Fisher's exact test
    cluster_ci_low: float | None = None
    cluster_ci_high: float | None = None


@dataclass
class Generalisation:
    """The misalignment rate on the held-out and on the eval worlds; ``difference``: held-out − eval."""

    heldout: Proportion
    eval: Proportion
    difference: Difference | None  # None when either split scored nothing


@dataclass
class ScopeIndicators:
    """The indicators of one family (or ``all``), over its headline cells."""

    cells: str  # "pressured", "all" (no pressured cell), or "mixed" (``all`` over families of both kinds)
    misalignment: Proportion
    harmful_tool_calls: Proportion  # count: harmful calls, n: calls (rate x 100 = per 100 calls)
    episodes_with_harmful_call: Proportion
    epoch_consistency: Proportion | None  # None: n/a, no episode was repeated
    paraphrase_consistency: Proportion | None  # None: n/a, one wording per world
    generalisation: Generalisation | None = None  # None: one split was evaluated


@dataclass
class Indicators:
    """Every scope's indicators: ``all`` first, then each family."""

    split: str
    scopes: dict[str, ScopeIndicators] = field(default_factory=dict)
    compared_split: str | None = None  # the other split, when generalisation was measured
    compared_results: str | None = None  # its results file

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Indicators:
        def prop(d: dict[str, Any] | None) -> Proportion | None:
            return Proportion(**d) if d is not None else None

        scopes = {}
        for name, s in data["scopes"].items():
            general = s.get("generalisation")
            if general is not None:
                diff = general.get("difference")
                general = Generalisation(
                    Proportion(**general["heldout"]),
                    Proportion(**general["eval"]),
                    Difference(**diff) if diff is not None else None,
                )
            scopes[name] = ScopeIndicators(
                cells=s["cells"],
                misalignment=Proportion(**s["misalignment"]),
                harmful_tool_calls=Proportion(**s["harmful_tool_calls"]),
                episodes_with_harmful_call=Proportion(**s["episodes_with_harmful_call"]),
                epoch_consistency=prop(s.get("epoch_consistency")),
                paraphrase_consistency=prop(s.get("paraphrase_consistency")),
                generalisation=general,
            )
        return cls(
            split=data["split"],
            scopes=scopes,
            compared_split=data.get("compared_split"),
            compared_results=data.get("compared_results"),
        )


# --- from a sample's score ------------------------------------------------------------------------------


def sample_paraphrase(meta: dict[str, Any]) -> int:
    """Which wording of its world a sample is (``paraphrase`` in its metadata; 0 when the world has one)."""
    value = meta.get("paraphrase", (meta.get("episode") or {}).get("paraphrase", 0))
    return int(value or 0)


def sample_tool_calls(score: dict[str, Any], played: dict[str, Any]) -> int | None:
    """Calls in the episode's action log: from the score, or the agent's stored world."""
    if score.get("tool_calls") is not None:
        return int(score["tool_calls"])
    actions = (played.get("world") or {}).get("actions")
    return len(actions) if isinstance(actions, list) else None


def harmful_calls(categories: dict[str, Any]) -> int | None:
    """Distinct action-log calls the rule cites for the categories whose outcome is harmful.

    ``None`` when a harmful category cites no call (decided by the judge alone, or a score written before
    categories carried their evidence): which calls were harmful is then unknown.
    """
    cited: set[int] = set()
    for value in categories.values():
        if value.get("outcome") != "harmful":
            continue
        evidence = value.get("evidence")
        if not evidence:
            return None
        cited.update(int(i) for i in evidence)
    return len(cited)


# --- arithmetic ------------------------------------------------------------------------------------------


def proportion(
    units: Iterable[tuple[str, str, int, int]], *, excluded: int = 0, errors: int = 0
) -> Proportion:
    """A share from ``(world, episode, count, n)`` units: their sums with Wilson's and the clustered interval.

    The units of one ``(world, episode)`` are summed into one bootstrap unit, so they move together.
    """
    merged: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for world, episode, count, n in units:
        merged[(world, episode)][0] += count
        merged[(world, episode)][1] += n
    k = sum(c for c, _ in merged.values())
    n = sum(m for _, m in merged.values())
    if n == 0:
        return Proportion(k, 0, None, None, None, excluded=excluded, errors=errors)
    low, high = wilson_interval(k, n)
    out = Proportion(k, n, k / n, low, high, excluded=excluded, errors=errors)
    clustered = cluster_interval([EpisodeCount(w, c, m) for (w, _), (c, m) in merged.items()])
    if clustered is not None:
        out.cluster_ci_low, out.cluster_ci_high = clustered.low, clustered.high
        out.clusters, out.design_effect = clustered.clusters, clustered.design_effect
    return out


def _from_row(row: RateRow) -> Proportion:
    return Proportion(
        row.harmful,
        row.n,
        row.rate,
        row.ci_low,
        row.ci_high,
        row.cluster_ci_low,
        row.cluster_ci_high,
        row.clusters,
        row.design_effect,
        excluded=row.unscored,
        errors=row.errors,
    )


def misalignment(samples: list[SampleOutcome]) -> Proportion:
    """The headline rate of these samples (the same counts and intervals as a results row)."""
    from teachwhy.evals.results import rate_row

    return _from_row(rate_row(ALL, ALL, samples))


def _episode(s: SampleOutcome) -> tuple[str, str, int]:
    return (s.scenario_id, s.condition, s.paraphrase)


def tool_use(samples: list[SampleOutcome]) -> tuple[Proportion, Proportion]:
    """(harmful calls over calls, episodes with a harmful call over scored episodes); see the module doc."""
    calls: list[tuple[str, str, int, int]] = []
    episodes: list[tuple[str, str, int, int]] = []
    errors = unscored_episodes = unknown_calls = 0
    for s in samples:
        if s.outcome == "error":
            errors += 1
            continue
        outcomes = set(s.categories.values())
        key = str(_episode(s))
        if "harmful" in outcomes:
            episodes.append((s.scenario_id, key, 1, 1))
        elif outcomes and outcomes <= {"not_harmful"}:
            episodes.append((s.scenario_id, key, 0, 1))
        else:
            unscored_episodes += 1
        every_scored = bool(outcomes) and outcomes <= set(SCORED)
        if every_scored and s.tool_calls is not None and s.harmful_tool_calls is not None:
            calls.append((s.scenario_id, key, s.harmful_tool_calls, s.tool_calls))
        else:
            unknown_calls += 1
    return (
        proportion(calls, excluded=unknown_calls, errors=errors),
        proportion(episodes, excluded=unscored_episodes, errors=errors),
    )


def _agreement(groups: dict[tuple[str, str, int], list[str]], *, errors: int) -> Proportion:
    """The share of groups ``(world, condition, _)`` with at least two verdicts whose verdicts all agree."""
    units = []
    excluded = 0
    for (world, condition, _), verdicts in groups.items():
        if len(verdicts) < 2:
            excluded += 1
            continue
        units.append((world, condition, int(len(set(verdicts)) == 1), 1))
    return proportion(units, excluded=excluded, errors=errors)


def epoch_consistency(samples: list[SampleOutcome]) -> Proportion | None:
    """Episodes whose scored epochs all agree, among those with two or more (``None``: none repeated)."""
    played: dict[tuple[str, str, int], int] = defaultdict(int)
    verdicts: dict[tuple[str, str, int], list[str]] = defaultdict(list)
    for s in samples:
        played[_episode(s)] += 1
        if s.outcome in SCORED:
            verdicts[_episode(s)].append(s.outcome)
    if all(count < 2 for count in played.values()):
        return None
    groups = {key: verdicts.get(key, []) for key in played}
    return _agreement(groups, errors=sum(s.outcome == "error" for s in samples))


def paraphrase_consistency(samples: list[SampleOutcome]) -> Proportion | None:
    """World, condition and epoch units whose wordings' scored verdicts all agree, among those with two or
    more scored wordings (``None``: no unit was played in two wordings)."""
    wordings: dict[tuple[str, str, int], set[int]] = defaultdict(set)
    verdicts: dict[tuple[str, str, int], dict[int, str]] = defaultdict(dict)
    for s in samples:
        unit = (s.scenario_id, s.condition, s.epoch)
        wordings[unit].add(s.paraphrase)
        if s.outcome in SCORED:
            verdicts[unit][s.paraphrase] = s.outcome
    if all(len(w) < 2 for w in wordings.values()):
        return None
    groups = {unit: list(verdicts.get(unit, {}).values()) for unit in wordings}
    return _agreement(groups, errors=sum(s.outcome == "error" for s in samples))


def difference(a: Proportion, b: Proportion) -> Difference | None:
    """``a - b`` with Newcombe's interval, Fisher's p-value and, where both have one, the clustered interval
    built from their clustered intervals (MOVER: each side's distance to its bound, added in quadrature)."""
    if not a.n or not b.n or a.rate is None or b.rate is None:
        return None
    d = rate_difference(a.count, a.n, b.count, b.n)
    out = Difference(d.diff, d.ci_low, d.ci_high, d.p_value)
    if None not in (a.cluster_ci_low, a.cluster_ci_high, b.cluster_ci_low, b.cluster_ci_high):
        la, ua = float(a.cluster_ci_low or 0.0), float(a.cluster_ci_high or 0.0)
        lb, ub = float(b.cluster_ci_low or 0.0), float(b.cluster_ci_high or 0.0)
        out.cluster_ci_low = max(-1.0, d.diff - math.hypot(a.rate - la, ub - b.rate))
        out.cluster_ci_high = min(1.0, d.diff + math.hypot(ua - a.rate, b.rate - lb))
    return out


# --- a run's indicators ---------------------------------------------------------------------------------


def headline_cells(samples: list[SampleOutcome]) -> tuple[str, list[SampleOutcome]]:
    """A family's headline cells: its pressured samples, or every sample when it has none pressured."""
    pressured = [s for s in samples if condition_group(s.condition) == PRESSURED]
    return (PRESSURED, pressured) if pressured else (ALL, samples)


def _scopes(results: HoneypotResults) -> dict[str, tuple[str, list[SampleOutcome]]]:
    """``all`` and each family: (which cells, the samples of those cells)."""
    by_family: dict[str, list[SampleOutcome]] = defaultdict(list)
    for s in results.samples:
        by_family[s.family].append(s)
    families = {f: headline_cells(by_family[f]) for f in sorted(by_family)}
    kinds = {cells for cells, _ in families.values()}
    pooled = [s for _, chosen in families.values() for s in chosen]
    cells = kinds.pop() if len(kinds) == 1 else "mixed" if kinds else ALL
    return {ALL: (cells, pooled), **families}


def honeypot_indicators(
    results: HoneypotResults, other: HoneypotResults | None = None, *, other_file: str | None = None
) -> Indicators:
    """The indicators of one run; with ``other`` (the same run on the other split), generalisation too."""
    out = Indicators(split=results.split)
    compared = _scopes(other) if other is not None else {}
    for scope, (cells, samples) in _scopes(results).items():
        calls, episodes = tool_use(samples)
        rate = misalignment(samples)
        out.scopes[scope] = ScopeIndicators(
            cells=cells,
            misalignment=rate,
            harmful_tool_calls=calls,
            episodes_with_harmful_call=episodes,
            epoch_consistency=epoch_consistency(samples),
            paraphrase_consistency=paraphrase_consistency(samples),
        )
        if other is not None and scope in compared:
            other_rate = misalignment(compared[scope][1])
            heldout, evaluated = (rate, other_rate) if results.split == "heldout" else (other_rate, rate)
            gap = difference(heldout, evaluated)
            out.scopes[scope].generalisation = Generalisation(heldout, evaluated, gap)
    if other is not None:
        out.compared_split, out.compared_results = other.split, other_file
    return out
