"""CLI: ``teachwhy eval assessment`` and ``teachwhy eval adherence``, and their side of ``eval compare``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from teachwhy.cli_options import (
    DEFAULT_CONFIG,
    AuditorOption,
    ConfigOption,
    GeneratorOption,
    JudgeOption,
    TargetOption,
    load_experiment,
)

console = Console()
LogDirOption = Annotated[Path | None, typer.Option("--log-dir", help="Where logs and results go.")]


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def _interval(low: float | None, high: float | None, fmt: str = "num") -> str:
    if low is None or high is None:
        return "-"
    return f"{_pct(low)}-{_pct(high)}" if fmt == "pct" else f"{_num(low)}-{_num(high)}"


def print_assessment(results: object) -> None:
    """Per dimension: mean, clustered interval, share at or above the threshold; then the audit counts."""
    from teachwhy.assessment.results import AssessmentResults

    assert isinstance(results, AssessmentResults)
    t = results.concern_threshold
    table = Table(title=f"assessment -- {results.target_model} (auditor {results.auditor_model})")
    for column in ("dimension", "kind", "n", "seeds", "mean", "95% CI", f">={t}", "share CI", "unsc."):
        table.add_column(column, justify="left" if column in ("dimension", "kind") else "right")
    for d in results.dimensions:
        direction = "(higher better)" if d.higher_is_better else ""
        table.add_row(
            f"{d.id} {direction}".strip(),
            d.kind,
            str(d.n),
            str(d.seeds),
            _num(d.mean),
            _interval(d.ci_low, d.ci_high),
            f"{d.at_or_above} ({_pct(d.share)})",
            _interval(d.share_ci_low, d.share_ci_high, "pct"),
            str(d.unscored),
        )
    console.print(table)
    c = results.counts
    console.print(
        f"audits {c['audits']}: scored {c['scored']} (partially {c['partially_scored']}), "
        f"target never called {c['no_target_call']}, judge refused {c['judge_refused']}, "
        f"judge unparseable {c['judge_unparseable']}, judge failed {c['judge_error']}, errors {c['errors']}"
    )
    console.print("intervals: cluster bootstrap over seeds; unsc.: judged audits without a score on it")


def print_adherence(results: object) -> None:
    """Per section and per principle: adherence and explained rates with Wilson intervals."""
    from teachwhy.adherence.results import AdherenceResults

    assert isinstance(results, AdherenceResults)
    table = Table(title=f"adherence -- {results.target_model}")
    for column in ("principle / section", "n", "adherent", "95% CI", "explains why", "unsc.", "err."):
        table.add_column(
            column, justify="left" if column.startswith("principle") else "right", overflow="fold"
        )
    for row in [results.overall, *results.sections]:
        table.add_row(
            row.title if row.id == "all" else f"[bold]{row.id}[/bold]",
            str(row.n),
            f"{row.adherent} ({_pct(row.rate)})",
            _interval(row.ci_low, row.ci_high, "pct"),
            f"{row.explained} ({_pct(row.explained_rate)})",
            str(row.unscored),
            str(row.errors),
        )
    for row in results.principles:
        table.add_row(
            f"  {row.id}",
            str(row.n),
            f"{row.adherent} ({_pct(row.rate)})",
            _interval(row.ci_low, row.ci_high, "pct"),
            f"{row.explained} ({_pct(row.explained_rate)})",
            str(row.unscored),
            str(row.errors),
        )
    console.print(table)
    c = results.counts
    console.print(
        f"answers {c['answers']}: graded {c['graded']}, ungraded {c['unscored']}, errors {c['errors']}, "
        f"cut off by max_tokens {c['truncated']}; situations: {results.situations_file}"
    )


def assessment_command(
    config: ConfigOption = DEFAULT_CONFIG,
    target: TargetOption = None,
    auditor: AuditorOption = None,
    judge: JudgeOption = None,
    seeds: Annotated[
        list[Path] | None, typer.Option("--seeds", help="A folder of your own seed files (repeatable).")
    ] = None,
    dimensions: Annotated[
        list[Path] | None,
        typer.Option("--dimensions", help="A folder of your own dimension files (repeatable)."),
    ] = None,
    select: Annotated[
        list[str] | None, typer.Option("--select", help="A seed id or tag:<tag> (repeatable; default all).")
    ] = None,
    max_turns: Annotated[int | None, typer.Option("--max-turns", help="Auditor replies per audit.")] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", help="Audits per seed.")] = None,
    log_dir: LogDirOption = None,
) -> None:
    """Alignment assessment: the auditor probes the target from seeds; the judge scores each dimension."""
    from teachwhy.assessment.run import run_assessment

    experiment = load_experiment(config, target=target, judge=judge, auditor=auditor)
    base = experiment.eval.assessment
    results = run_assessment(
        experiment,
        log_dir=log_dir,
        display="plain",
        seed_dirs=[*base.seed_dirs, *(seeds or [])] if seeds else None,
        dimension_dirs=[*base.dimension_dirs, *(dimensions or [])] if dimensions else None,
        seeds=select or None,
        max_turns=max_turns,
        epochs=epochs,
    )
    print_assessment(results)
    location = Path(results.log_files[0]).parent if results.log_files else log_dir
    console.print(
        f"results: {location}/assessment-results.json  (transcripts: inspect view --log-dir {location})"
    )


def adherence_command(
    config: ConfigOption = DEFAULT_CONFIG,
    target: TargetOption = None,
    judge: JudgeOption = None,
    generator: GeneratorOption = None,
    principle: Annotated[
        list[str] | None, typer.Option("--principle", help="A principle id (repeatable; default all).")
    ] = None,
    per_principle: Annotated[
        int | None, typer.Option("--situations", help="Held-out situations per principle (first run only).")
    ] = None,
    freeze_only: Annotated[
        bool, typer.Option("--freeze-only", help="Generate and freeze the situations, then stop.")
    ] = False,
    log_dir: LogDirOption = None,
) -> None:
    """Constitution adherence on held-out situations (generated once, frozen), per principle and section."""
    from teachwhy.adherence.run import adherence_settings, frozen_situations, run_adherence

    experiment = load_experiment(config, target=target, judge=judge, generator=generator)
    overrides: dict[str, Any] = {"principles": principle or None, "situations_per_principle": per_principle}
    if freeze_only:
        path, situations, generated = frozen_situations(experiment, adherence_settings(experiment, overrides))
        verb = "generated and froze" if generated else "already frozen:"
        console.print(f"{verb} {len(situations)} situations in {path}")
        return
    results = run_adherence(experiment, log_dir=log_dir, display="plain", **overrides)
    print_adherence(results)
    location = Path(results.log_files[0]).parent if results.log_files else log_dir
    console.print(
        f"results: {location}/adherence-results.json  (transcripts: inspect view --log-dir {location})"
    )


def results_kind(path: Path) -> str | None:
    """``assessment`` or ``adherence`` for such a results file (or a folder holding one), else ``None``."""
    from teachwhy.adherence.results import RESULTS_FILE as ADHERENCE_FILE
    from teachwhy.assessment.results import RESULTS_FILE as ASSESSMENT_FILE

    if path.is_dir():
        for name, kind in ((ASSESSMENT_FILE, "assessment"), (ADHERENCE_FILE, "adherence")):
            if (path / name).exists() and not (path / "honeypot-results.json").exists():
                return kind
        return None
    try:
        kind = json.loads(path.read_text(encoding="utf-8")).get("kind")
    except (OSError, json.JSONDecodeError, AttributeError):
        return None
    return kind if kind in ("assessment", "adherence") else None


def compare_other(a: Path, b: Path) -> bool:
    """Print the comparison of two assessment or two adherence results; ``False`` if they are neither."""
    from teachwhy.errors import UserError

    kind_a, kind_b = results_kind(a), results_kind(b)
    if kind_a is None and kind_b is None:
        return False
    if kind_a != kind_b:
        raise UserError(
            f"cannot compare a {kind_a or 'honeypot'} result with a {kind_b or 'honeypot'} result"
        )
    if kind_a == "assessment":
        _compare_assessment(a, b)
    else:
        _compare_adherence(a, b)
    return True


def _signed(value: float | None, pct: bool = False) -> str:
    if value is None:
        return "-"
    return f"{100 * value:+.1f} pts" if pct else f"{value:+.2f}"


def _compare_assessment(a: Path, b: Path) -> None:
    from teachwhy.assessment.results import AssessmentResults, compare_assessments

    ra, rb = AssessmentResults.load(a), AssessmentResults.load(b)
    table = Table(title=f"assessment: A = {ra.target_model} ({a})  vs  B = {rb.target_model} ({b})")
    for column in ("dimension", "A mean (n)", "B mean (n)", "A - B", "95% CI", "p-value"):
        table.add_column(column, justify="left" if column == "dimension" else "right")
    for c in compare_assessments(ra, rb):
        ci = "-" if c.ci_low is None else f"{_signed(c.ci_low)} to {_signed(c.ci_high)}"
        table.add_row(
            c.id,
            f"{_num(c.mean_a)} ({c.n_a})",
            f"{_num(c.mean_b)} ({c.n_b})",
            _signed(c.diff),
            ci if not c.note else c.note,
            "-" if c.p_value is None else f"{c.p_value:.3g}",
        )
    console.print(table)
    console.print("intervals and p-values: cluster bootstrap over seeds, each run resampled on its own")


def _compare_adherence(a: Path, b: Path) -> None:
    from teachwhy.adherence.results import AdherenceResults, compare_adherence

    ra, rb = AdherenceResults.load(a), AdherenceResults.load(b)
    table = Table(title=f"adherence: A = {ra.target_model} ({a})  vs  B = {rb.target_model} ({b})")
    for column in ("principle / section", "A adherent/n", "B adherent/n", "A - B", "95% CI", "p-value"):
        table.add_column(
            column, justify="left" if column.startswith("principle") else "right", overflow="fold"
        )
    for c in compare_adherence(ra, rb):
        ci = "-" if c.ci_low is None else f"{_signed(c.ci_low, True)} to {_signed(c.ci_high, True)}"
        label = c.id if c.level != "principle" else f"  {c.id}"
        table.add_row(
            label,
            f"{c.adherent_a}/{c.n_a}",
            f"{c.adherent_b}/{c.n_b}",
            _signed(c.diff, True),
            ci,
            "-" if c.p_value is None else f"{c.p_value:.3g}",
        )
    console.print(table)
