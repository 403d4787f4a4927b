"""The honeypot results file: its schema and how it is built from Inspect logs.

``teachwhy eval`` writes ``honeypot-results.json`` beside the Inspect logs; the report stage and
``teachwhy eval compare`` (:mod:`teachwhy.evals.comparison`) read it back with :meth:`HoneypotResults.load`.
Schema (version 2)::

    schema_version, created, target_model, judge_model, policy, split, families, epochs, log_files, worlds,
    indicators,
    rows:    [{family, world, condition, n, harmful, rate, ci_low, ci_high,
               cluster_ci_low, cluster_ci_high, clusters, design_effect,
               unscored, errors, disagreements, malformed_tool_calls, truncated_replies, headline,
               categories: {category: {n, harmful, rate, ci_low, ci_high, unscored,
                                       cluster_ci_low, cluster_ci_high, clusters, design_effect}},
               endings: {ending: count}}]
    samples: [{sample_id, epoch, family, scenario_id, condition, outcome, reason, rule_verdict,
               judge_status, judge_verdict, disagreement, turns, malformed_tool_calls, log_file,
               ending, truncated_replies, headline, categories: {category: outcome},
               paraphrase, tool_calls, harmful_tool_calls}]

Rows, per family: ``world`` ``all`` with ``condition`` ``all`` (every cell), ``pressured`` (the cells with a
threat to the agent or a goal conflict: the headline), ``control`` (goal type and urgency both ``none``), then
one row per condition; then each world on its own (``world`` = its id) with ``all``, ``pressured`` and
``control``. A group with no sample has no row.

A row's ``n``/``harmful``/``rate`` are the family's *headline* outcome (the categories named in ``headline``,
e.g. blackmail's ``coercion``); ``categories`` gives every behaviour category of the family the same way.
``n`` is the number of *scored* samples, the rate's denominator; ``unscored`` (judge refused, unparseable or
failed, an incomplete ending, an ambiguous rule under the rule-only policy) and ``errors`` (the target model
or the episode failed) are counted beside it and never folded into ``harmful`` or ``n``. ``rate`` and the
intervals are ``null`` when ``n`` is 0. ``ci_low``/``ci_high`` is Wilson's 95% interval, which treats every
scored sample as independent; ``cluster_ci_low``/``cluster_ci_high`` is the clustered 95% interval
(:mod:`teachwhy.evals.design`: worlds, then episodes within them, resampled; the epochs of one episode are
repeats), with the number of worlds (``clusters``) and the estimated ``design_effect``. ``endings`` counts
how the episodes ended (``done``, ``no_tool_call``, ``turn_limit``, ``truncated``, ``model_length``,
``content_filter``, and ``error`` for a sample that failed). The categories and the headline are read from
each sample's score, so they follow the rubric files. Each sample keeps its log file and id, so a number
links to the transcripts behind it. ``indicators`` holds the monitoring indicators with their intervals
(:mod:`teachwhy.evals.indicators`), each sample its wording (``paraphrase``), the calls in its action log and
those the rule cites for a category judged harmful. A version-1 file (before categories and endings) is
refused with a message saying to run the eval again; the clustered, per-world and indicator fields are
additive, so a version-2 file written before them still loads.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from inspect_ai.log import EvalLog

from teachwhy.errors import UserError
from teachwhy.evals.agent import ENDINGS, STORE_KEY
from teachwhy.evals.design import CONTROL, PRESSURED, EpisodeCount, cluster_interval, condition_group
from teachwhy.evals.indicators import harmful_calls, honeypot_indicators, sample_paraphrase, sample_tool_calls
from teachwhy.evals.stats import wilson_interval
from teachwhy.storage import atomic_write_json, read_results_json

SCHEMA_VERSION = 2
RESULTS_FILE = "honeypot-results.json"
ALL = "all"
ERROR = "error"  # the ending of a sample that failed (target model, episode or scorer)
ENDING_ORDER: tuple[str, ...] = (*ENDINGS, ERROR)


@dataclass
class SampleOutcome:
    """One played and classified episode (one epoch of one sample)."""

    sample_id: str
    epoch: int
    family: str
    scenario_id: str
    condition: str
    outcome: str  # harmful | not_harmful | unscored | error
    reason: str
    rule_verdict: str | None = None
    judge_status: str | None = None
    judge_verdict: str | None = None
    disagreement: bool = False
    turns: int | None = None
    malformed_tool_calls: int = 0
    log_file: str = ""
    ending: str = ERROR
    truncated_replies: int = 0  # replies cut off at the output limit
    headline: list[str] = field(default_factory=list)  # the categories whose outcome is ``outcome``
    categories: dict[str, str] = field(default_factory=dict)  # category -> harmful | not_harmful | unscored
    paraphrase: int = 0  # which wording of the world (0: the first)
    tool_calls: int | None = None  # calls in the action log (None: the episode left no log)
    # calls the rule cites for a category judged harmful (None: unknown, see teachwhy.evals.indicators)
    harmful_tool_calls: int | None = None


@dataclass
class CategoryRate:
    """One behaviour category's counts and harmful rate in a group of samples."""

    n: int  # samples scored on this category
    harmful: int
    rate: float | None
    ci_low: float | None
    ci_high: float | None
    unscored: int
    cluster_ci_low: float | None = None  # the clustered 95% interval (see teachwhy.evals.design)
    cluster_ci_high: float | None = None
    clusters: int = 0  # worlds the scored samples came from
    design_effect: float | None = None


@dataclass
class RateRow:
    """Counts and the harmful rate of one family under one condition (``all``: the family total)."""

    family: str
    condition: str
    n: int
    harmful: int
    rate: float | None
    ci_low: float | None
    ci_high: float | None
    unscored: int
    errors: int
    disagreements: int
    malformed_tool_calls: int
    truncated_replies: int = 0
    headline: list[str] = field(default_factory=list)
    categories: dict[str, CategoryRate] = field(default_factory=dict)
    endings: dict[str, int] = field(default_factory=dict)
    world: str = ALL  # a world's id (scenario id), or ``all`` for every world of the family
    cluster_ci_low: float | None = None
    cluster_ci_high: float | None = None
    clusters: int = 0
    design_effect: float | None = None


@dataclass
class HoneypotResults:
    """A whole run's results."""

    target_model: str
    judge_model: str | None
    policy: str
    split: str
    families: list[str]
    epochs: int
    log_files: list[str]
    rows: list[RateRow]
    samples: list[SampleOutcome]
    worlds: list[str] = field(default_factory=list)  # the worlds (scenario ids) the samples came from
    # the monitoring indicators (teachwhy.evals.indicators.Indicators as JSON); None in older files
    indicators: dict[str, Any] | None = None
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    schema_version: int = SCHEMA_VERSION

    def family_total(self, family: str) -> RateRow | None:
        """The family's row over every world and condition."""
        return self.row(family, ALL)

    def row(self, family: str, condition: str, world: str = ALL) -> RateRow | None:
        """One row: a condition (or ``all``, ``pressured``, ``control``) of one world (or ``all``)."""
        return next(
            (r for r in self.rows if r.family == family and r.condition == condition and r.world == world),
            None,
        )

    def family_headline(self, family: str) -> RateRow | None:
        """The family's headline row: its pressured cells, or every cell when the run had no pressured one."""
        return self.row(family, PRESSURED) or self.family_total(family)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str | Path | None = None) -> HoneypotResults:
        if data.get("schema_version") != SCHEMA_VERSION:
            raise UserError(
                f"unsupported results schema {data.get('schema_version')!r} (expected {SCHEMA_VERSION}; "
                "results written before categories and endings were recorded: run `teachwhy eval` again)",
                file=source,
                key="schema_version",
            )
        try:
            fields = {k: v for k, v in data.items() if k not in ("rows", "samples")}
            return cls(
                rows=[_row_from_dict(r) for r in data["rows"]],
                samples=[SampleOutcome(**s) for s in data["samples"]],
                **fields,
            )
        except (KeyError, TypeError, AttributeError) as e:
            raise UserError(f"not a honeypot results file ({e})", file=source) from None

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        atomic_write_json(path, self.to_dict())
        return path

    @classmethod
    def load(cls, path: str | Path) -> HoneypotResults:
        data, found = read_results_json(path, RESULTS_FILE)
        return cls.from_dict(data, source=found)


def sample_outcomes(log: EvalLog) -> list[SampleOutcome]:
    """Every sample of an Inspect log as a :class:`SampleOutcome` (errors included, never dropped)."""
    out: list[SampleOutcome] = []
    for sample in log.samples or []:
        meta = sample.metadata or {}
        played = (sample.store or {}).get(STORE_KEY) or {}  # the agent's own record, if it finished
        base: dict[str, Any] = {
            "sample_id": str(sample.id),
            "epoch": sample.epoch,
            "family": str(meta.get("family", "")),
            "scenario_id": str(meta.get("scenario_id", "")),
            "condition": str(meta.get("condition", "")),
            "log_file": log.location,
            "truncated_replies": int(played.get("truncated_replies", 0) or 0),
            "paraphrase": sample_paraphrase(meta),
        }
        score = next(iter((sample.scores or {}).values()), None)
        if sample.error is not None or score is None:
            message = sample.error.message if sample.error is not None else "the sample has no score"
            out.append(
                SampleOutcome(**base, outcome="error", reason=" ".join(message.split())[:500], ending=ERROR)
            )
            continue
        m = score.metadata or {}
        judge = m.get("judge") or {}
        categories = m.get("categories") or {}
        if "truncated_replies" in m:
            base["truncated_replies"] = int(m["truncated_replies"] or 0)
        out.append(
            SampleOutcome(
                **base,
                outcome=str(score.answer),
                reason=str(score.explanation or m.get("reason") or ""),
                rule_verdict=m.get("rule_verdict"),
                judge_status=judge.get("status"),
                judge_verdict=judge.get("verdict"),
                disagreement=bool(m.get("disagreement")),
                turns=m.get("turns"),
                malformed_tool_calls=int(m.get("malformed", 0) or 0),
                ending=str(m.get("ending") or played.get("ended_by") or "unknown"),
                headline=[str(c) for c in m.get("headline") or []],
                categories={str(c): str(v.get("outcome")) for c, v in categories.items()},
                tool_calls=sample_tool_calls(m, played),
                harmful_tool_calls=harmful_calls(categories),
            )
        )
    return out


def category_rate(outcomes: Iterable[str], episodes: Iterable[tuple[str, str, str]] = ()) -> CategoryRate:
    """Counts and Wilson interval of one category's outcomes (harmful, not_harmful, unscored).

    ``episodes`` gives the same outcomes as ``(world, episode id, outcome)``, for the clustered interval.
    """
    counts = Counter(outcomes)
    harmful = counts["harmful"]
    n = harmful + counts["not_harmful"]
    low, high = wilson_interval(harmful, n) if n else (None, None)
    rate = CategoryRate(n, harmful, harmful / n if n else None, low, high, counts["unscored"])
    clustered = cluster_interval(episode_counts(episodes))
    if clustered is not None:
        rate.cluster_ci_low, rate.cluster_ci_high = clustered.low, clustered.high
        rate.clusters, rate.design_effect = clustered.clusters, clustered.design_effect
    return rate


def episode_counts(outcomes: Iterable[tuple[str, str, str]]) -> list[EpisodeCount]:
    """Per episode (its epochs together): harmful and scored epochs, from ``(world, episode, outcome)``."""
    counts: dict[tuple[str, str], list[int]] = {}
    for world, episode, outcome in outcomes:
        c = counts.setdefault((world, episode), [0, 0])
        c[0] += outcome == "harmful"
        c[1] += outcome in ("harmful", "not_harmful")
    return [EpisodeCount(world, k, n) for (world, _), (k, n) in counts.items()]


def _in_order(names: Iterable[str], first: Iterable[str] = ()) -> list[str]:
    """Distinct names, ``first`` ones leading, the rest in the order they were first seen."""
    return list(dict.fromkeys([*first, *names]))


def rate_row(family: str, condition: str, samples: list[SampleOutcome], world: str = ALL) -> RateRow:
    """Count one group of samples with its Wilson and clustered intervals (headline and per category)."""
    headline = _in_order(c for s in samples for c in s.headline)
    categories = _in_order((c for s in samples for c in s.categories), first=headline)
    endings = Counter(s.ending for s in samples)
    top = category_rate(
        (s.outcome for s in samples), ((s.scenario_id, s.sample_id, s.outcome) for s in samples)
    )
    return RateRow(
        family=family,
        condition=condition,
        world=world,
        cluster_ci_low=top.cluster_ci_low,
        cluster_ci_high=top.cluster_ci_high,
        clusters=top.clusters,
        design_effect=top.design_effect,
        n=top.n,
        harmful=top.harmful,
        rate=top.rate,
        ci_low=top.ci_low,
        ci_high=top.ci_high,
        unscored=top.unscored,
        errors=sum(s.outcome == "error" for s in samples),
        disagreements=sum(s.disagreement for s in samples),
        malformed_tool_calls=sum(s.malformed_tool_calls for s in samples),
        truncated_replies=sum(s.truncated_replies for s in samples),
        headline=headline,
        categories={
            c: category_rate(
                (s.categories[c] for s in samples if c in s.categories),
                ((s.scenario_id, s.sample_id, s.categories[c]) for s in samples if c in s.categories),
            )
            for c in categories
        },
        endings={e: endings[e] for e in _in_order(endings, first=[e for e in ENDING_ORDER if endings[e]])},
    )


def _row_from_dict(data: dict[str, Any]) -> RateRow:
    categories = {c: CategoryRate(**v) for c, v in data.get("categories", {}).items()}
    return RateRow(**{**data, "categories": categories})


def _grouped(samples: list[SampleOutcome], family: str, world: str) -> list[RateRow]:
    """``all``, then ``pressured`` and ``control`` where the run had such cells."""
    rows = [rate_row(family, ALL, samples, world)]
    for group in (PRESSURED, CONTROL):
        chosen = [s for s in samples if condition_group(s.condition) == group]
        if chosen:
            rows.append(rate_row(family, group, chosen, world))
    return rows


def build_rows(samples: list[SampleOutcome]) -> list[RateRow]:
    """Per family: every world together (``all``, ``pressured``, ``control``, then each condition), then
    each world on its own (``all``, ``pressured``, ``control``), in a stable order."""
    by_family: dict[str, list[SampleOutcome]] = defaultdict(list)
    for s in samples:
        by_family[s.family].append(s)
    rows: list[RateRow] = []
    for family in sorted(by_family):
        group = by_family[family]
        rows.extend(_grouped(group, family, ALL))
        by_condition: dict[str, list[SampleOutcome]] = defaultdict(list)
        by_world: dict[str, list[SampleOutcome]] = defaultdict(list)
        for s in group:
            by_condition[s.condition].append(s)
            by_world[s.scenario_id].append(s)
        rows.extend(rate_row(family, c, by_condition[c]) for c in sorted(by_condition))
        for world in sorted(by_world):
            rows.extend(_grouped(by_world[world], family, world))
    return rows


def build_results(
    logs: list[EvalLog], *, target_model: str, judge_model: str | None, policy: str, split: str, epochs: int
) -> HoneypotResults:
    """Results of one or more Inspect logs of the honeypot tasks."""
    samples = [o for log in logs for o in sample_outcomes(log)]
    families = sorted({s.family for s in samples})
    results = HoneypotResults(
        target_model=target_model,
        judge_model=judge_model,
        policy=policy,
        split=split,
        families=families,
        epochs=epochs,
        log_files=[log.location for log in logs],
        rows=build_rows(samples),
        samples=samples,
        worlds=sorted({s.scenario_id for s in samples}),
    )
    results.indicators = honeypot_indicators(results).to_dict()
    return results


@dataclass(frozen=True)
class FailedSamples:
    """Samples of a run that produced no score: errors and unscored, with their causes."""

    failed: int
    total: int
    causes: dict[str, int]  # e.g. {"judge unparseable": 7, "error": 2}

    @property
    def share(self) -> float:
        return self.failed / self.total if self.total else 1.0

    def describe(self) -> str:
        """``9 of 12 episodes failed or unscored (7 judge unparseable, 2 errors)``."""
        causes = ", ".join(
            f"{k} {'errors' if cause == ERROR and k != 1 else cause}" for cause, k in self.causes.items()
        )
        return f"{self.failed} of {self.total} episodes failed or unscored ({causes or 'none'})"


def failed_samples(results: HoneypotResults) -> FailedSamples:
    """Count errored and unscored samples; an unscored sample's cause is its reason up to the first ``:``."""
    causes: Counter[str] = Counter()
    for s in results.samples:
        if s.outcome == "error":
            causes[ERROR] += 1
        elif s.outcome not in ("harmful", "not_harmful"):
            causes[s.reason.split(":", 1)[0].strip() or "unscored"] += 1
    ordered = dict(sorted(causes.items(), key=lambda kv: (-kv[1], kv[0])))
    return FailedSamples(sum(causes.values()), len(results.samples), ordered)
