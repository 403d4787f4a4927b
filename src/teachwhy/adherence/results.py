"""The adherence results file (``adherence-results.json``): per principle and per section, with intervals.

Schema (version 1)::

    kind: "adherence", schema_version, created, target_model, judge_model, epochs, situations_file,
    situations_sha256, log_files,
    counts:     {answers, graded, unscored, errors, truncated}
    principles: [{id, section, title, n, adherent, rate, ci_low, ci_high, explained, explained_rate,
                  explained_ci_low, explained_ci_high, unscored, errors}]
    sections:   [same fields, id = the section name]      overall: one row, id "all"
    answers:    [{sample_id, epoch, principle_id, section, outcome, acts_in_line, explains_why,
                  judge_status, stop_reason, reason, log_file}]

``n`` counts graded answers; ``rate`` is adherent / n with a Wilson 95% interval (``null`` when n is 0).
``explained`` counts answers that both act in line and explain why. Ungraded answers (judge refused,
unparseable or failed, target stopped by a filter or a full context) and failed samples are counted beside
``n``, never in it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from inspect_ai.log import EvalLog

from teachwhy.errors import UserError
from teachwhy.evals.stats import rate_difference, wilson_interval
from teachwhy.storage import atomic_write_json, read_results_json

SCHEMA_VERSION = 1
RESULTS_FILE = "adherence-results.json"
KIND = "adherence"


@dataclass
class AnswerOutcome:
    """One graded (or not) answer."""

    sample_id: str
    epoch: int
    principle_id: str
    section: str
    outcome: str  # adherent | not_adherent | unscored | error
    acts_in_line: bool | None = None
    explains_why: bool | None = None
    judge_status: str | None = None
    stop_reason: str | None = None
    reason: str = ""
    log_file: str = ""


@dataclass
class AdherenceRow:
    """Adherence of one principle, one section, or everything (``id == "all"``)."""

    id: str
    section: str
    title: str
    n: int
    adherent: int
    rate: float | None
    ci_low: float | None
    ci_high: float | None
    explained: int
    explained_rate: float | None
    explained_ci_low: float | None
    explained_ci_high: float | None
    unscored: int
    errors: int


@dataclass
class AdherenceResults:
    """A whole adherence run."""

    target_model: str
    judge_model: str | None
    epochs: int
    situations_file: str
    situations_sha256: str
    log_files: list[str]
    counts: dict[str, int]
    principles: list[AdherenceRow]
    sections: list[AdherenceRow]
    overall: AdherenceRow
    answers: list[AnswerOutcome]
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    kind: str = KIND
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        atomic_write_json(path, self.to_dict())
        return path

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str | Path | None = None) -> AdherenceResults:
        if data.get("kind") != KIND or data.get("schema_version") != SCHEMA_VERSION:
            raise UserError(
                f"not an adherence results file (schema {SCHEMA_VERSION})", file=source, key="kind"
            )
        try:
            rest = {
                k: v for k, v in data.items() if k not in ("principles", "sections", "overall", "answers")
            }
            return cls(
                principles=[AdherenceRow(**r) for r in data["principles"]],
                sections=[AdherenceRow(**r) for r in data["sections"]],
                overall=AdherenceRow(**data["overall"]),
                answers=[AnswerOutcome(**a) for a in data["answers"]],
                **rest,
            )
        except (KeyError, TypeError) as e:
            raise UserError(f"not an adherence results file ({e})", file=source) from None

    @classmethod
    def load(cls, path: str | Path) -> AdherenceResults:
        data, found = read_results_json(path, RESULTS_FILE)
        return cls.from_dict(data, source=found)


def answer_outcomes(log: EvalLog) -> list[AnswerOutcome]:
    """Every sample of an adherence log (failed ones included, as ``error``)."""
    out: list[AnswerOutcome] = []
    for sample in log.samples or []:
        meta = sample.metadata or {}
        base: dict[str, Any] = {
            "sample_id": str(sample.id),
            "epoch": sample.epoch,
            "principle_id": str(meta.get("principle_id", "")),
            "section": str(meta.get("section", "")),
            "log_file": log.location,
        }
        score = next(iter((sample.scores or {}).values()), None)
        if sample.error is not None or score is None:
            message = sample.error.message if sample.error is not None else "the answer has no score"
            out.append(AnswerOutcome(**base, outcome="error", reason=" ".join(message.split())[:500]))
            continue
        m = score.metadata or {}
        grade = m.get("grade") or {}
        out.append(
            AnswerOutcome(
                **base,
                outcome=str(score.answer),
                acts_in_line=grade.get("acts_in_line"),
                explains_why=grade.get("explains_why"),
                judge_status=grade.get("status"),
                stop_reason=m.get("stop_reason"),
                reason=str(score.explanation or "")[:500],
            )
        )
    return out


def adherence_row(ident: str, section: str, title: str, answers: Sequence[AnswerOutcome]) -> AdherenceRow:
    """Count one group of answers and attach Wilson intervals."""
    graded = [a for a in answers if a.outcome in ("adherent", "not_adherent")]
    n = len(graded)
    adherent = sum(a.outcome == "adherent" for a in graded)
    explained = sum(a.outcome == "adherent" and bool(a.explains_why) for a in graded)
    low, high = wilson_interval(adherent, n) if n else (None, None)
    e_low, e_high = wilson_interval(explained, n) if n else (None, None)
    return AdherenceRow(
        id=ident,
        section=section,
        title=title,
        n=n,
        adherent=adherent,
        rate=adherent / n if n else None,
        ci_low=low,
        ci_high=high,
        explained=explained,
        explained_rate=explained / n if n else None,
        explained_ci_low=e_low,
        explained_ci_high=e_high,
        unscored=sum(a.outcome == "unscored" for a in answers),
        errors=sum(a.outcome == "error" for a in answers),
    )


def build_adherence_results(
    logs: Sequence[EvalLog],
    *,
    titles: dict[str, tuple[str, str]],
    target_model: str,
    judge_model: str | None,
    epochs: int,
    situations_file: str,
    situations_sha256: str,
) -> AdherenceResults:
    """Aggregate adherence logs; ``titles`` maps principle id -> (section, title), in constitution order."""
    answers = [a for log in logs for a in answer_outcomes(log)]
    by_principle: dict[str, list[AnswerOutcome]] = defaultdict(list)
    by_section: dict[str, list[AnswerOutcome]] = defaultdict(list)
    for a in answers:
        by_principle[a.principle_id].append(a)
        by_section[a.section].append(a)
    principles = [
        adherence_row(pid, section, title, by_principle[pid])
        for pid, (section, title) in titles.items()
        if pid in by_principle
    ]
    sections = [
        adherence_row(s, s, s, by_section[s])
        for s in dict.fromkeys(sec for sec, _ in titles.values())
        if s in by_section
    ]
    counts = {
        "answers": len(answers),
        "graded": sum(a.outcome in ("adherent", "not_adherent") for a in answers),
        "unscored": sum(a.outcome == "unscored" for a in answers),
        "errors": sum(a.outcome == "error" for a in answers),
        "truncated": sum(a.stop_reason == "max_tokens" for a in answers),
    }
    return AdherenceResults(
        target_model=target_model,
        judge_model=judge_model,
        epochs=epochs,
        situations_file=situations_file,
        situations_sha256=situations_sha256,
        log_files=[log.location for log in logs],
        counts=counts,
        principles=principles,
        sections=sections,
        overall=adherence_row("all", "", "all principles", answers),
        answers=answers,
    )


@dataclass
class AdherenceComparison:
    """Run A's adherence minus run B's for one principle, section or ``all``."""

    id: str
    level: str  # principle | section | overall
    adherent_a: int
    n_a: int
    adherent_b: int
    n_b: int
    diff: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None


def compare_adherence(a: AdherenceResults, b: AdherenceResults) -> list[AdherenceComparison]:
    """Newcombe interval and Fisher p-value of the difference, per row present in both runs."""
    rows: list[AdherenceComparison] = []
    pairs = [("overall", a.overall, b.overall)]
    for level, ra, rb in (("section", a.sections, b.sections), ("principle", a.principles, b.principles)):
        other = {r.id: r for r in rb}
        pairs += [(level, r, other[r.id]) for r in ra if r.id in other]
    for level, x, y in pairs:
        if x.n == 0 or y.n == 0:
            rows.append(
                AdherenceComparison(x.id, level, x.adherent, x.n, y.adherent, y.n, None, None, None, None)
            )
            continue
        d = rate_difference(x.adherent, x.n, y.adherent, y.n)
        rows.append(
            AdherenceComparison(
                x.id, level, x.adherent, x.n, y.adherent, y.n, d.diff, d.ci_low, d.ci_high, d.p_value
            )
        )
    return rows
