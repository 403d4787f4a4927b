"""The assessment results file (``assessment-results.json``): per-dimension means and concern shares.

Schema (version 1)::

    kind: "assessment", schema_version, created, target_model, auditor_model, judge_model, epochs,
    concern_threshold, seeds, log_files,
    counts:     {audits, scored, partially_scored, no_target_call, judge_refused, judge_unparseable,
                 judge_error, errors}
    dimensions: [{id, title, kind, higher_is_better, n, seeds, mean, ci_low, ci_high, at_or_above, share,
                  share_ci_low, share_ci_high, unscored}]
    audits:     [{sample_id, epoch, seed_id, tags, outcome, reason, ended_by, target_calls, rollbacks,
                  auditor_turns, malformed_calls, truncated_replies, scores, evidence, log_file}]

A dimension's ``n`` counts the audits the judge scored on it; ``unscored`` the judged audits it did not
(refused, unparseable, failed). Audits where the target was never called and audits that failed are in
``counts`` and ``audits``, never in a mean. ``mean`` and ``share`` (audits scoring at or above
``concern_threshold``) carry cluster-bootstrap 95% intervals with the seed as the cluster; they are ``null``
when ``n`` is 0, the intervals also when fewer than two seeds were scored.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from inspect_ai.log import EvalLog

from teachwhy.assessment.clustered import cluster_bootstrap_difference, cluster_bootstrap_mean
from teachwhy.assessment.library import Dimension
from teachwhy.errors import UserError
from teachwhy.storage import atomic_write_json, read_results_json

SCHEMA_VERSION = 1
RESULTS_FILE = "assessment-results.json"
KIND = "assessment"


@dataclass
class AuditOutcome:
    """One audit (one epoch of one seed) and what the judge made of it."""

    sample_id: str
    epoch: int
    seed_id: str
    outcome: str  # scored | no_target_call | judge_refused | judge_unparseable | judge_error | error
    reason: str
    tags: list[str] = field(default_factory=list)
    ended_by: str | None = None
    target_calls: int = 0
    rollbacks: int = 0
    auditor_turns: int = 0
    malformed_calls: int = 0
    truncated_replies: int = 0
    scores: dict[str, int | None] = field(default_factory=dict)
    evidence: dict[str, str] = field(default_factory=dict)
    log_file: str = ""


@dataclass
class DimensionRow:
    """One dimension over all audits."""

    id: str
    title: str
    kind: str
    higher_is_better: bool
    n: int
    seeds: int
    mean: float | None
    ci_low: float | None
    ci_high: float | None
    at_or_above: int
    share: float | None
    share_ci_low: float | None
    share_ci_high: float | None
    unscored: int


@dataclass
class AssessmentResults:
    """A whole assessment run."""

    target_model: str
    auditor_model: str | None
    judge_model: str | None
    epochs: int
    concern_threshold: int
    seeds: list[str]
    log_files: list[str]
    counts: dict[str, int]
    dimensions: list[DimensionRow]
    audits: list[AuditOutcome]
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    kind: str = KIND
    schema_version: int = SCHEMA_VERSION

    def dimension(self, ident: str) -> DimensionRow | None:
        return next((d for d in self.dimensions if d.id == ident), None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        atomic_write_json(path, self.to_dict())
        return path

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str | Path | None = None) -> AssessmentResults:
        if data.get("kind") != KIND or data.get("schema_version") != SCHEMA_VERSION:
            raise UserError(
                f"not an assessment results file (schema {SCHEMA_VERSION})", file=source, key="kind"
            )
        try:
            rest = {k: v for k, v in data.items() if k not in ("dimensions", "audits")}
            return cls(
                dimensions=[DimensionRow(**d) for d in data["dimensions"]],
                audits=[AuditOutcome(**a) for a in data["audits"]],
                **rest,
            )
        except (KeyError, TypeError) as e:
            raise UserError(f"not an assessment results file ({e})", file=source) from None

    @classmethod
    def load(cls, path: str | Path) -> AssessmentResults:
        data, found = read_results_json(path, RESULTS_FILE)
        return cls.from_dict(data, source=found)


def audit_outcomes(log: EvalLog) -> list[AuditOutcome]:
    """Every sample of an assessment log as an :class:`AuditOutcome` (failed ones included)."""
    out: list[AuditOutcome] = []
    for sample in log.samples or []:
        seed = (sample.metadata or {}).get("seed") or {}
        base: dict[str, Any] = {
            "sample_id": str(sample.id),
            "epoch": sample.epoch,
            "seed_id": str(seed.get("seed_id", sample.id)),
            "tags": list(seed.get("tags", [])),
            "log_file": log.location,
        }
        score = next(iter((sample.scores or {}).values()), None)
        if sample.error is not None or score is None:
            message = sample.error.message if sample.error is not None else "the audit has no score"
            out.append(AuditOutcome(**base, outcome="error", reason=" ".join(message.split())[:500]))
            continue
        m = score.metadata or {}
        judge = m.get("judge") or {}
        out.append(
            AuditOutcome(
                **base,
                outcome=str(score.answer),
                reason=str(score.explanation or ""),
                ended_by=m.get("ended_by"),
                target_calls=int(m.get("target_calls", 0)),
                rollbacks=int(m.get("rollbacks", 0)),
                auditor_turns=int(m.get("auditor_turns", 0)),
                malformed_calls=int(m.get("malformed_calls", 0)),
                truncated_replies=int(m.get("truncated_replies", 0)),
                scores=dict(m.get("scores") or {}),
                evidence={
                    k: v["evidence"] for k, v in (judge.get("scores") or {}).items() if v.get("evidence")
                },
            )
        )
    return out


def count_outcomes(audits: Sequence[AuditOutcome]) -> dict[str, int]:
    """How many audits ended each way (the judged ones split by the judge's status)."""
    counts = {
        k: 0
        for k in (
            "audits",
            "scored",
            "partially_scored",
            "no_target_call",
            "judge_refused",
            "judge_unparseable",
            "judge_error",
            "errors",
        )
    }
    for a in audits:
        counts["audits"] += 1
        if a.outcome == "scored":
            counts["scored"] += 1
            counts["partially_scored"] += any(v is None for v in a.scores.values())
        elif a.outcome == "error":
            counts["errors"] += 1
        elif a.outcome in counts:
            counts[a.outcome] += 1
        else:  # judge_partial cannot happen (partial is scored); an unknown answer is still counted
            counts["errors"] += 1
    return counts


def dimension_row(dimension: Dimension, audits: Sequence[AuditOutcome], threshold: int) -> DimensionRow:
    """The mean and concern share of one dimension, clustered by seed."""
    values: dict[str, list[float]] = defaultdict(list)
    flags: dict[str, list[float]] = defaultdict(list)
    unscored = 0
    for a in audits:
        if a.outcome not in ("scored", "judge_refused", "judge_unparseable", "judge_error"):
            continue
        value = a.scores.get(dimension.id)
        if value is None:
            unscored += 1
            continue
        values[a.seed_id].append(float(value))
        flags[a.seed_id].append(float(value >= threshold))
    mean = cluster_bootstrap_mean(values)
    share = cluster_bootstrap_mean(flags)
    return DimensionRow(
        id=dimension.id,
        title=dimension.title,
        kind=dimension.kind,
        higher_is_better=dimension.higher_is_better,
        n=mean.n,
        seeds=mean.clusters,
        mean=mean.mean,
        ci_low=mean.ci_low,
        ci_high=mean.ci_high,
        at_or_above=int(sum(sum(v) for v in flags.values())),
        share=share.mean,
        share_ci_low=share.ci_low,
        share_ci_high=share.ci_high,
        unscored=unscored,
    )


def build_assessment_results(
    logs: Sequence[EvalLog],
    dimensions: Sequence[Dimension],
    *,
    target_model: str,
    auditor_model: str | None,
    judge_model: str | None,
    epochs: int,
    concern_threshold: int,
) -> AssessmentResults:
    """Aggregate the Inspect logs of an assessment run."""
    audits = [a for log in logs for a in audit_outcomes(log)]
    return AssessmentResults(
        target_model=target_model,
        auditor_model=auditor_model,
        judge_model=judge_model,
        epochs=epochs,
        concern_threshold=concern_threshold,
        seeds=sorted({a.seed_id for a in audits}),
        log_files=[log.location for log in logs],
        counts=count_outcomes(audits),
        dimensions=[dimension_row(d, audits, concern_threshold) for d in dimensions],
        audits=audits,
    )


@dataclass
class DimensionComparison:
    """Run A's mean minus run B's on one dimension."""

    id: str
    title: str
    n_a: int
    n_b: int
    mean_a: float | None
    mean_b: float | None
    diff: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    note: str = ""


def _by_seed(results: AssessmentResults, ident: str) -> dict[str, list[float]]:
    values: dict[str, list[float]] = defaultdict(list)
    for a in results.audits:
        value = a.scores.get(ident)
        if value is not None and a.outcome == "scored":
            values[a.seed_id].append(float(value))
    return values


def compare_assessments(a: AssessmentResults, b: AssessmentResults) -> list[DimensionComparison]:
    """Per dimension present in both runs: the difference in means with a cluster-bootstrap interval."""
    rows: list[DimensionComparison] = []
    for da in a.dimensions:
        db = b.dimension(da.id)
        if db is None:
            continue
        d = cluster_bootstrap_difference(_by_seed(a, da.id), _by_seed(b, da.id))
        if d is None:
            rows.append(
                DimensionComparison(
                    da.id,
                    da.title,
                    da.n,
                    db.n,
                    da.mean,
                    db.mean,
                    None,
                    None,
                    None,
                    None,
                    "no scored audits in one run",
                )
            )
            continue
        rows.append(
            DimensionComparison(
                da.id, da.title, da.n, db.n, da.mean, db.mean, d.diff, d.ci_low, d.ci_high, d.p_value
            )
        )
    return rows
