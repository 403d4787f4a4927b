"""The honeypot results file: its schema, how it is built from Inspect logs, and comparisons of two runs.

``teachwhy eval`` writes ``honeypot-results.json`` beside the Inspect logs; the report stage and
``teachwhy eval compare`` read it back with :meth:`HoneypotResults.load`. Schema (version 1)::

    schema_version, created, target_model, judge_model, policy, split, families, epochs, log_files,
    rows:    [{family, condition, n, harmful, rate, ci_low, ci_high, unscored, errors, disagreements,
               malformed_tool_calls}]      # condition "all" is the family total
    samples: [{sample_id, epoch, family, scenario_id, condition, outcome, reason, rule_verdict,
               judge_status, judge_verdict, disagreement, turns, malformed_tool_calls, log_file}]

``n`` is the number of *scored* samples, the rate's denominator; ``unscored`` (judge refused, unparseable or
failed, or an ambiguous rule under the rule-only policy) and ``errors`` (the target model or the episode
failed) are counted beside it and never folded into ``harmful`` or ``n``. ``rate`` and the Wilson 95%
interval are ``null`` when ``n`` is 0. Each sample keeps its log file and id, so a number links to the
transcripts behind it.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from inspect_ai.log import EvalLog

from teachwhy.errors import UserError
from teachwhy.evals.stats import rate_difference, wilson_interval
from teachwhy.storage import atomic_write_json

SCHEMA_VERSION = 1
RESULTS_FILE = "honeypot-results.json"
ALL = "all"


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
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    schema_version: int = SCHEMA_VERSION

    def family_total(self, family: str) -> RateRow | None:
        return next((r for r in self.rows if r.family == family and r.condition == ALL), None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str | Path | None = None) -> HoneypotResults:
        if data.get("schema_version") != SCHEMA_VERSION:
            raise UserError(
                f"unsupported results schema {data.get('schema_version')!r} (expected {SCHEMA_VERSION})",
                file=source,
                key="schema_version",
            )
        try:
            fields = {k: v for k, v in data.items() if k not in ("rows", "samples")}
            return cls(
                rows=[RateRow(**r) for r in data["rows"]],
                samples=[SampleOutcome(**s) for s in data["samples"]],
                **fields,
            )
        except (KeyError, TypeError) as e:
            raise UserError(f"not a honeypot results file ({e})", file=source) from None

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        atomic_write_json(path, self.to_dict())
        return path

    @classmethod
    def load(cls, path: str | Path) -> HoneypotResults:
        path = Path(path)
        if path.is_dir():
            path = path / RESULTS_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UserError("results file not found", file=path) from None
        except json.JSONDecodeError as e:
            raise UserError(f"not valid JSON ({e.msg})", file=path, key=f"line {e.lineno}") from None
        return cls.from_dict(data, source=path)


def sample_outcomes(log: EvalLog) -> list[SampleOutcome]:
    """Every sample of an Inspect log as a :class:`SampleOutcome` (errors included, never dropped)."""
    out: list[SampleOutcome] = []
    for sample in log.samples or []:
        meta = sample.metadata or {}
        base: dict[str, Any] = {
            "sample_id": str(sample.id),
            "epoch": sample.epoch,
            "family": str(meta.get("family", "")),
            "scenario_id": str(meta.get("scenario_id", "")),
            "condition": str(meta.get("condition", "")),
            "log_file": log.location,
        }
        score = next(iter((sample.scores or {}).values()), None)
        if sample.error is not None or score is None:
            message = sample.error.message if sample.error is not None else "the sample has no score"
            out.append(SampleOutcome(**base, outcome="error", reason=" ".join(message.split())[:500]))
            continue
        m = score.metadata or {}
        judge = m.get("judge") or {}
        out.append(
            SampleOutcome(
                **base,
                outcome=str(score.answer),
                reason=str(score.explanation or ""),
                rule_verdict=m.get("rule_verdict"),
                judge_status=judge.get("status"),
                judge_verdict=judge.get("verdict"),
                disagreement=bool(m.get("disagreement")),
                turns=m.get("turns"),
                malformed_tool_calls=int(m.get("malformed", 0) or 0),
            )
        )
    return out


def rate_row(family: str, condition: str, samples: list[SampleOutcome]) -> RateRow:
    """Count one group of samples and attach the Wilson interval."""
    harmful = sum(s.outcome == "harmful" for s in samples)
    n = harmful + sum(s.outcome == "not_harmful" for s in samples)
    low, high = wilson_interval(harmful, n) if n else (None, None)
    return RateRow(
        family=family,
        condition=condition,
        n=n,
        harmful=harmful,
        rate=harmful / n if n else None,
        ci_low=low,
        ci_high=high,
        unscored=sum(s.outcome == "unscored" for s in samples),
        errors=sum(s.outcome == "error" for s in samples),
        disagreements=sum(s.disagreement for s in samples),
        malformed_tool_calls=sum(s.malformed_tool_calls for s in samples),
    )


def build_rows(samples: list[SampleOutcome]) -> list[RateRow]:
    """A total row per family, then one row per condition, in a stable order."""
    by_family: dict[str, list[SampleOutcome]] = defaultdict(list)
    for s in samples:
        by_family[s.family].append(s)
    rows: list[RateRow] = []
    for family in sorted(by_family):
        group = by_family[family]
        rows.append(rate_row(family, ALL, group))
        by_condition: dict[str, list[SampleOutcome]] = defaultdict(list)
        for s in group:
            by_condition[s.condition].append(s)
        rows.extend(rate_row(family, c, by_condition[c]) for c in sorted(by_condition))
    return rows


def build_results(
    logs: list[EvalLog], *, target_model: str, judge_model: str | None, policy: str, split: str, epochs: int
) -> HoneypotResults:
    """Results of one or more Inspect logs of the honeypot tasks."""
    samples = [o for log in logs for o in sample_outcomes(log)]
    families = sorted({s.family for s in samples})
    return HoneypotResults(
        target_model=target_model,
        judge_model=judge_model,
        policy=policy,
        split=split,
        families=families,
        epochs=epochs,
        log_files=[log.location for log in logs],
        rows=build_rows(samples),
        samples=samples,
    )


@dataclass(frozen=True)
class FamilyComparison:
    """``rate_a - rate_b`` for one family, or why it could not be computed."""

    family: str
    harmful_a: int
    n_a: int
    harmful_b: int
    n_b: int
    diff: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    note: str = ""


def compare_results(a: HoneypotResults, b: HoneypotResults) -> list[FamilyComparison]:
    """Per family present in either run: difference in rate (A - B), Newcombe 95% CI, Fisher exact p-value."""
    out: list[FamilyComparison] = []
    for family in sorted(set(a.families) | set(b.families)):
        ra, rb = a.family_total(family), b.family_total(family)
        ka, na = (ra.harmful, ra.n) if ra else (0, 0)
        kb, nb = (rb.harmful, rb.n) if rb else (0, 0)
        if na == 0 or nb == 0:
            missing = "A" if na == 0 else "B"
            out.append(
                FamilyComparison(
                    family,
                    ka,
                    na,
                    kb,
                    nb,
                    None,
                    None,
                    None,
                    None,
                    f"run {missing} has no scored samples of this family",
                )
            )
            continue
        d = rate_difference(ka, na, kb, nb)
        out.append(FamilyComparison(family, ka, na, kb, nb, d.diff, d.ci_low, d.ci_high, d.p_value))
    return out
