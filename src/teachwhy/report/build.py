"""Build the static HTML report from an experiment summary: ``index.html`` plus one page per transcript group.

The report reads only ``summary.json`` and the files it links (results files, Inspect logs, data and training
logs), all relative to the workspace. Links from the report into the workspace are relative too, so the whole
workspace folder can be copied or zipped and the report still works from ``file://``.

Layout of the output folder::

    index.html
    transcripts/<arm>/step-<step>/index.html       every family of one checkpoint (the ``overall`` numbers)
    transcripts/<arm>/step-<step>/<family>.html     one family's transcripts at one checkpoint
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from markupsafe import Markup

from teachwhy.config import FAMILIES
from teachwhy.experiment.summary import ArmSummary, CheckpointEval, ExperimentSummary, RateSummary
from teachwhy.report import charts
from teachwhy.report.design_tables import design_context
from teachwhy.report.heldout import heldout_context
from teachwhy.report.indicators import indicators_context
from teachwhy.report.render import ci, data_value, href, pct, render
from teachwhy.report.rl import rl_context
from teachwhy.report.transcripts import CheckpointTranscripts, LogSamples, load_checkpoint
from teachwhy.storage import atomic_write_text

OVERALL = "overall"
INDEX = "index.html"
MARKER = ".teachwhy-report"


def slug(name: str) -> str:
    """A file-name-safe form of an arm or family name."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "_"
    return cleaned[:80]


@dataclass
class Link:
    """A link into the workspace, and whether its target exists (a missing one is shown as missing)."""

    label: str
    href: str
    exists: bool


@dataclass
class Cell:
    """One rate in a table: the numbers and the transcripts page behind them."""

    arm: str
    family: str
    step: int
    rate: RateSummary | None
    href: str
    category: str = ""  # a behaviour category's rate, or (empty) the family's headline

    @property
    def data(self) -> dict[str, str]:
        r = self.rate
        out = {"arm": self.arm, "family": self.family, "step": str(self.step)}
        if self.category:
            out["category"] = self.category
        if r is not None:
            out.update(
                rate=data_value(r.rate),
                ci_low=data_value(r.ci_low),
                ci_high=data_value(r.ci_high),
                n=str(r.n),
                harmful=str(r.harmful),
                unscored=str(r.unscored),
                errors=str(r.errors),
                disagreements=str(r.disagreements),
            )
        return out

    @property
    def attributes(self) -> Markup:
        return Markup(
            "".join(f' data-{k.replace("_", "-")}="{Markup.escape(v)}"' for k, v in self.data.items())
        )

    def mark(self) -> charts.Mark:
        r = self.rate
        if r is None:
            return charts.Mark(None, 0.0, 0.0, self.href, f"{self.arm} · {self.family}: not evaluated", {})
        interval = ci(r.ci_low, r.ci_high)
        label = f"{self.arm} · {self.family}: {pct(r.rate)} ({interval}), {r.harmful}/{r.n} harmful"
        data = {k.replace("_", "-"): v for k, v in self.data.items()}
        return charts.Mark(r.rate, r.ci_low, r.ci_high, self.href, label, data)


@dataclass
class Report:
    """Where the report is written and where the workspace it links into is."""

    summary: ExperimentSummary
    workspace: Path
    out_dir: Path
    log_cache: dict[Path, LogSamples] = field(default_factory=dict)

    def families(self) -> list[str]:
        seen = {f for arm in self.summary.arms for c in arm.checkpoints for f in c.families}
        known = [f for f in FAMILIES if f in seen]
        return known + sorted(seen - set(known))

    def page(self, arm: str, step: int, family: str = OVERALL) -> Path:
        folder = self.out_dir / "transcripts" / slug(arm) / f"step-{step}"
        return folder / (INDEX if family == OVERALL else f"{slug(family)}.html")

    def cell(self, arm: str, checkpoint: CheckpointEval, family: str, from_dir: Path) -> Cell:
        rate = checkpoint.overall if family == OVERALL else checkpoint.families.get(family)
        return Cell(
            arm, family, checkpoint.step, rate, href(self.page(arm, checkpoint.step, family), from_dir)
        )

    def link(self, relative: str | None, from_dir: Path, label: str | None = None) -> Link | None:
        if not relative:
            return None
        target = Path(relative) if Path(relative).is_absolute() else self.workspace / relative
        return Link(label or Path(relative).name, href(target, from_dir), target.exists())

    def workspace_path(self, relative: str) -> Path:
        return Path(relative) if Path(relative).is_absolute() else self.workspace / relative


def build_report(
    summary_path: str | Path, *, out_dir: str | Path | None = None, workspace: str | Path | None = None
) -> Path:
    """Write the report and return the path of its ``index.html``.

    Args:
        summary_path: the experiment's ``summary.json``.
        out_dir: where to write (default: ``<workspace>/report``).
        workspace: the folder the summary's relative paths start from (default: the summary's folder).

    Raises:
        UserError: the summary is missing or is not a teachwhy summary.
    """
    summary_path = Path(summary_path)
    summary = ExperimentSummary.read(summary_path)
    root = Path(workspace) if workspace is not None else summary_path.parent
    out = Path(out_dir) if out_dir is not None else root / "report"
    report = Report(summary, root.resolve(), out.resolve())
    _clear_previous(report.out_dir)
    for arm in summary.arms:
        for checkpoint in arm.checkpoints:
            _write_transcript_pages(report, arm, checkpoint)
    index = report.out_dir / INDEX
    atomic_write_text(index, render("index.html", **_index_context(report)))
    return index


def _clear_previous(out_dir: Path) -> None:
    """Remove transcript pages of an earlier report in ``out_dir`` (only where teachwhy wrote that report)."""
    marker = out_dir / MARKER
    if marker.exists() and (out_dir / "transcripts").is_dir():
        shutil.rmtree(out_dir / "transcripts")
    atomic_write_text(marker, "written by teachwhy report; its transcripts/ folder is replaced on each run\n")


# --- index ------------------------------------------------------------------------------------------


def _index_context(report: Report) -> dict[str, Any]:
    s, here = report.summary, report.out_dir
    families = report.families()
    columns = [*families, OVERALL]
    arm_names = [a.name for a in s.arms]
    colours = charts.arm_colours(arm_names, s.baseline)

    final_rows = []
    bar_marks: dict[tuple[str, str], charts.Mark] = {}
    pareto_points = []
    curves: dict[str, list[tuple[int, charts.Mark]]] = {}
    for arm in s.arms:
        final = arm.final()
        cells = [report.cell(arm.name, final, f, here) for f in columns] if final else []
        final_rows.append({"arm": arm, "colour": colours[arm.name], "final": final, "cells": cells})
        for cell in cells:
            bar_marks[(cell.family, arm.name)] = cell.mark()
        if cells:
            pareto_points.append(charts.ParetoPoint(arm.name, arm.trained_tokens, cells[-1].mark()))
        curves[arm.name] = [
            (c.step, report.cell(arm.name, c, OVERALL, here).mark()) for c in arm.checkpoints if c.overall
        ]
    return {
        "s": s,
        "families": families,
        "columns": columns,
        "colours": colours,
        "final_rows": final_rows,
        "comparisons": _comparison_rows(report),
        "checkpoints": _checkpoint_rows(report, columns, colours),
        "data_rows": _data_rows(report, colours),
        "ood": sorted(
            s.ood,
            key=lambda o: (arm_names.index(o.arm) if o.arm in arm_names else len(arm_names), o.evaluation),
        ),
        "health": [_health(report, arm, here) for arm in s.arms if arm.final() is not None],
        "behaviour": _behaviour_rows(report, families, colours),
        "controls": _controls_row(s.controls, columns),
        "cut_off": cut_off_arms(s),
        "design": design_context(s),
        "indicators": indicators_context(s),
        "charts": {
            "rates": Markup(charts.rate_bars(columns, arm_names, bar_marks, colours)),
            "pareto": Markup(charts.pareto_plot(pareto_points, colours)),
            "curves": Markup(charts.training_curves(curves, colours)),
        },
        "workspace": str(report.workspace),
        "heldout": heldout_context(s, report.workspace, here, colours),
        "rl": rl_context(s, report.workspace, here, colours),
    }


def _controls_row(controls: dict[str, Any] | None, columns: list[str]) -> dict[str, Any] | None:
    """The instrument's own check under every rate column: sensitivity and specificity of the scripted
    controls (``teachwhy eval controls``), and a warning for each family whose sensitivity is below 90%."""
    if not controls:
        return None
    scopes = controls["scopes"]

    def cell(scope: str) -> dict[str, Any] | None:
        value = scopes.get("all" if scope == OVERALL else scope)
        if value is None or not value["sensitivity"]["n"]:
            return None
        sens, spec = value["sensitivity"], value["specificity"]
        return {
            "sensitivity": f"{100 * sens['rate']:.0f}% "
            f"[{100 * sens['ci_low']:.0f}–{100 * sens['ci_high']:.0f}]",
            "specificity": f"{100 * spec['rate']:.0f}%" if spec["n"] else "—",
            "low": sens["rate"] < 0.9,
        }

    cells = [cell(c) for c in columns]
    low = [c for c, v in zip(columns, cells, strict=True) if v is not None and v["low"] and c != OVERALL]
    return {"cells": cells, "policy": controls["policy"], "judge": controls["judge"], "low": low}


CUT_OFF = frozenset({"truncated", "model_length"})
"""Endings of an episode whose last reply was cut off (by the output limit or the context): it is unscored."""
CUT_OFF_WARNING_SHARE = 0.25


def cut_off_arms(summary: ExperimentSummary) -> list[dict[str, Any]]:
    """The arms whose last checkpoint had at least a quarter of its episodes cut off.

    Such an episode is unscored (never counted safe), so the arm's rate rests on the episodes that finished
    and may say little; the report warns about each of them.
    """
    found = []
    for arm in summary.arms:
        final = arm.final()
        if final is None or final.overall is None:
            continue
        endings = final.overall.endings  # every family's endings, summed by the summary
        total = sum(endings.values())
        cut = sum(endings.get(e, 0) for e in CUT_OFF)
        if total and cut >= CUT_OFF_WARNING_SHARE * total:
            found.append({"arm": arm.name, "step": final.step, "cut": cut, "total": total})
    return found


def _comparison_rows(report: Report) -> list[dict[str, Any]]:
    """Each arm-vs-baseline difference, linked to the arm's transcripts for that family."""
    rows = []
    finals = {a.name: a.final() for a in report.summary.arms}
    for comp in report.summary.comparisons:
        final = finals.get(comp.arm)
        target = report.page(comp.arm, final.step, comp.family) if final is not None else None
        rows.append(
            {
                "c": comp,
                "href": href(target, report.out_dir) if target is not None else None,
                "significant": comp.ci_low > 0 or comp.ci_high < 0,
            }
        )
    return rows


def _checkpoint_rows(report: Report, columns: list[str], colours: dict[str, str]) -> list[dict[str, Any]]:
    """One row per evaluated checkpoint of every arm, with its files."""
    here = report.out_dir
    rows = []
    for arm in report.summary.arms:
        for checkpoint in sorted(arm.checkpoints, key=lambda c: c.step):
            logs = checkpoint.log_files
            rows.append(
                {
                    "arm": arm.name,
                    "colour": colours[arm.name],
                    "checkpoint": checkpoint,
                    "cells": [report.cell(arm.name, checkpoint, f, here) for f in columns],
                    "results": report.link(checkpoint.results_file, here, "results"),
                    "compared": report.link(checkpoint.compared_results_file, here, "eval-split results"),
                    "logs": [
                        report.link(p, here, f"log {i}" if len(logs) > 1 else "log")
                        for i, p in enumerate(logs, start=1)
                    ],
                }
            )
    return rows


def _data_rows(report: Report, colours: dict[str, str]) -> list[dict[str, Any]]:
    """Records, tokens and data files per source, and drops by reason, for each arm."""
    here = report.out_dir
    rows = []
    for arm in report.summary.arms:
        sources = sorted(set(arm.tokens_by_source) | set(arm.records_by_source) | set(arm.data_files))
        rows.append(
            {
                "arm": arm,
                "colour": colours[arm.name],
                "sources": [
                    {
                        "name": src,
                        "records": arm.records_by_source.get(src),
                        "tokens": arm.tokens_by_source.get(src),
                        "file": report.link(arm.data_files.get(src), here),
                    }
                    for src in sources
                ],
                "drops": sorted(arm.dropped_by_reason.items(), key=lambda kv: (-kv[1], kv[0])),
                "train_log": report.link(arm.train_log, here, "training log"),
            }
        )
    return rows


def _health(report: Report, arm: ArmSummary, here: Path) -> dict[str, Any]:
    """Scored, unscored, failed and disputed samples at the arm's final checkpoint, per family."""
    final = arm.final()
    assert final is not None
    rows = []
    for family, rate in final.families.items():
        page = href(report.page(arm.name, final.step, family), here)
        rows.append({"family": family, "rate": rate, "href": page})
    total = {
        "n": sum(r.n for r in final.families.values()),
        "unscored": sum(r.unscored for r in final.families.values()),
        "errors": sum(r.errors for r in final.families.values()),
        "disagreements": sum(r.disagreements for r in final.families.values()),
    }
    return {
        "arm": arm.name,
        "step": final.step,
        "rows": rows,
        "total": total,
        "href": href(report.page(arm.name, final.step), here),
    }


INCOMPLETE = frozenset({"truncated", "model_length", "content_filter", "error"})


def _behaviour_rows(report: Report, families: list[str], colours: dict[str, str]) -> list[dict[str, Any]]:
    """Per arm, checkpoint and family: the headline, each category's rate, and how the episodes ended."""
    here = report.out_dir
    rows = []
    for arm in report.summary.arms:
        for checkpoint in sorted(arm.checkpoints, key=lambda c: c.step):
            for family in (f for f in families if f in checkpoint.families):
                rate = checkpoint.families[family]
                cell = report.cell(arm.name, checkpoint, family, here)
                rows.append(
                    {
                        "arm": arm.name,
                        "colour": colours[arm.name],
                        "step": checkpoint.step,
                        "family": family,
                        "cell": cell,
                        "headline": rate.headline,
                        "categories": [
                            Cell(arm.name, family, checkpoint.step, c, cell.href, category=name)
                            for name, c in rate.categories.items()
                        ],
                        "endings": [(e, k, e in INCOMPLETE) for e, k in rate.endings.items()],
                        "truncated_replies": rate.truncated_replies,
                    }
                )
    return rows


# --- transcript pages --------------------------------------------------------------------------------


def _write_transcript_pages(report: Report, arm: ArmSummary, checkpoint: CheckpointEval) -> None:
    results = report.workspace_path(checkpoint.results_file) if checkpoint.results_file else None
    logs = [report.workspace_path(p) for p in checkpoint.log_files]
    loaded = load_checkpoint(results, logs, report.workspace, log_cache=report.log_cache)
    found = {t.family for t in loaded.transcripts if t.family}
    families = list(checkpoint.families) + sorted(found - set(checkpoint.families))
    for family in families:
        page = report.page(arm.name, checkpoint.step, family)
        context = _page_context(report, arm, checkpoint, loaded, page.parent, family=family)
        context["transcripts"] = loaded.for_family(family)
        context["counts"] = loaded.outcome_counts(family)
        atomic_write_text(page, render("transcripts.html", **context))
    page = report.page(arm.name, checkpoint.step)
    context = _page_context(report, arm, checkpoint, loaded, page.parent, family=OVERALL)
    context["family_links"] = [
        {
            "family": f,
            "cell": report.cell(arm.name, checkpoint, f, page.parent),
            "counts": loaded.outcome_counts(f),
        }
        for f in families
    ]
    context["transcripts"] = loaded.without_family()
    context["counts"] = loaded.outcome_counts()
    atomic_write_text(page, render("transcripts.html", **context))


def _page_context(
    report: Report,
    arm: ArmSummary,
    checkpoint: CheckpointEval,
    loaded: CheckpointTranscripts,
    here: Path,
    *,
    family: str,
) -> dict[str, Any]:
    return {
        "s": report.summary,
        "arm": arm.name,
        "checkpoint": checkpoint,
        "family": family,
        "cell": report.cell(arm.name, checkpoint, family, here),
        "problems": loaded.problems,
        "family_links": [],
        "results": report.link(checkpoint.results_file, here, "results file"),
        "logs": [report.link(p, here) for p in checkpoint.log_files],
        "index": href(report.out_dir / INDEX, here),
        "checkpoint_page": href(report.page(arm.name, checkpoint.step), here),
        "log_href": lambda path: href(path, here) if path is not None else None,
    }
