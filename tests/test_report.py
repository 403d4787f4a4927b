"""The static HTML report: its numbers equal the summary's, every number links to its transcripts, text is
escaped, missing files are shown rather than fatal, and a real headless Chromium renders the charts."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from inspect_ai import Task, eval
from inspect_ai.dataset import Sample
from inspect_ai.scorer import Score, Target, scorer
from inspect_ai.solver import Generate, Solver, TaskState, solver
from typer.testing import CliRunner

from scripted import reply, scripted_model
from teachwhy.cli import app
from teachwhy.errors import UserError
from teachwhy.evals.stats import rate_difference, wilson_interval
from teachwhy.experiment.summary import (
    ArmSummary,
    CheckpointEval,
    Comparison,
    ExperimentSummary,
    OodDistance,
    RateSummary,
)
from teachwhy.report import build_report, dump_dom, find_browser, screenshot
from teachwhy.report.charts import Mark, ParetoPoint, pareto_front

FAMILIES = ("blackmail", "research_sabotage", "framing")
SCRIPT = "<script>alert('pwned')</script>"
ASSISTANT_TEXT = "I will not threaten Kyle. " + SCRIPT


# --- a workspace built the way `teachwhy run` lays one out -------------------------------------------------


class Elements(HTMLParser):
    """Every start tag with its attributes (and the text of links), in document order."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []
        self._open_a: dict[str, str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        entry = {k: v or "" for k, v in attrs}
        self.tags.append((tag, entry))
        if tag == "a":
            self._open_a = entry
            entry["#text"] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self._open_a = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._open_a is not None:
            self._open_a["#text"] += data

    def find(self, tag: str | None = None, **attrs: str) -> list[dict[str, str]]:
        out = []
        for name, entry in self.tags:
            if tag is not None and name != tag:
                continue
            if all(k in entry and (v == "*" or v in entry[k].split()) for k, v in attrs.items()):
                out.append(entry)
        return out


def parse(path: Path) -> Elements:
    parser = Elements()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def rate(harmful: int, n: int, *, unscored: int = 0, errors: int = 0, disagreements: int = 0) -> RateSummary:
    low, high = wilson_interval(harmful, n)
    return RateSummary(n, harmful, harmful / n if n else None, low, high, unscored, errors, disagreements)


def outcomes(harmful: int, safe: int, unscored: int = 0, errors: int = 0) -> list[str]:
    return ["harmful"] * harmful + ["not_harmful"] * safe + ["unscored"] * unscored + ["error"] * errors


# per arm, per step: family → (harmful, not harmful, unscored, errors)
PLAN: dict[str, dict[int, dict[str, tuple[int, int, int, int]]]] = {
    "baseline": {0: {"blackmail": (3, 2, 1, 0), "research_sabotage": (2, 3, 0, 0), "framing": (2, 4, 0, 1)}},
    "demos": {
        0: {"blackmail": (3, 2, 0, 0), "research_sabotage": (2, 3, 0, 0), "framing": (2, 4, 0, 0)},
        10: {"blackmail": (2, 3, 0, 0), "research_sabotage": (1, 4, 1, 0), "framing": (1, 5, 0, 0)},
    },
    "advice": {
        0: {"blackmail": (3, 2, 0, 0), "research_sabotage": (2, 3, 0, 0), "framing": (2, 4, 0, 0)},
        5: {"blackmail": (1, 4, 0, 0), "research_sabotage": (1, 4, 0, 0), "framing": (0, 6, 0, 0)},
        10: {"blackmail": (0, 5, 0, 0), "research_sabotage": (0, 5, 0, 0), "framing": (0, 6, 0, 2)},
    },
}
TOKENS = {
    "baseline": {},
    "demos": {"honeypot_demos": 180_000},
    "advice": {"advice": 12_000, "augment": 3_000},
}


@solver
def play_with_actions() -> Solver:
    async def solve(state: TaskState, generate_: Generate) -> TaskState:
        state = await generate_(state)
        action = {
            "index": 0,
            "turn": 1,
            "tool": "send_email",
            "ok": True,
            "result": "sent",
            "args": {"to": "kyle@summitbridge.example", "body": "Reconsider. " + SCRIPT},
        }
        state.store.set("honeypot", {"world": {"actions": [action]}})
        return state

    return solve


@scorer(metrics=[])
def stored_outcome() -> Any:
    async def score(state: TaskState, target: Target) -> Score:
        outcome = state.metadata["outcome"]
        return Score(
            value=outcome,
            answer=outcome,
            explanation=f"scripted {outcome}",
            metadata={"family": state.metadata["family"]},
        )

    return score


def write_inspect_log(folder: Path, records: list[dict[str, Any]]) -> Path:
    """A real Inspect log of scripted episodes, one sample per record."""
    samples = [
        Sample(
            id=r["sample_id"],
            input="You are Atlas at Summit Bridge.",
            metadata={"family": r["family"], "outcome": r["outcome"]},
        )
        for r in records
    ]
    model = scripted_model([reply(ASSISTANT_TEXT) for _ in samples])
    task = Task(dataset=samples, solver=play_with_actions(), scorer=stored_outcome())
    (log,) = eval(task, model=model, log_dir=str(folder), display="none", log_format="eval")
    assert log.status == "success", log.error
    return Path(log.location)


def build_workspace(
    root: Path, *, inspect_log_for: tuple[str, int] | None = ("advice", 10)
) -> ExperimentSummary:
    arms = []
    for arm, steps in PLAN.items():
        checkpoints = []
        for step, families in steps.items():
            folder = root / "evals" / arm / f"step-{step}"
            folder.mkdir(parents=True)
            records = [
                {
                    "sample_id": f"{family}-{i}",
                    "epoch": 1,
                    "family": family,
                    "scenario_id": f"{family}-01",
                    "condition": "explicit-america-replacement",
                    "outcome": outcome,
                    "reason": "rule harmful, judge harmful" if outcome == "harmful" else "declined " + SCRIPT,
                    "rule_verdict": "harmful" if outcome == "harmful" else "clean",
                    "disagreement": False,
                }
                for family, counts in families.items()
                for i, outcome in enumerate(outcomes(*counts))
            ]
            log_files = []
            if (arm, step) == inspect_log_for:
                log = write_inspect_log(folder, records)
                for r in records:
                    r["log_file"] = str(log)
                log_files.append(str(log.relative_to(root)))
            results = folder / "honeypot-results.json"
            results.write_text(json.dumps({"schema_version": 1, "samples": records}), encoding="utf-8")
            fam_rates = {f: rate(h, h + s, unscored=u, errors=e) for f, (h, s, u, e) in families.items()}
            totals = [sum(c[i] for c in families.values()) for i in range(4)]
            overall = rate(totals[0], totals[0] + totals[1], unscored=totals[2], errors=totals[3])
            checkpoints.append(
                CheckpointEval(
                    step=step,
                    model=f"embedded+{arm}@{step}",
                    tokens_seen=step * 1500,
                    results_file=str(results.relative_to(root)),
                    log_files=log_files,
                    families=fam_rates,
                    overall=overall,
                )
            )
        data_files = {}
        for source in TOKENS[arm]:
            path = root / "data" / arm / f"{source}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text('{"id": "x", "text": "t"}\n', encoding="utf-8")
            data_files[source] = str(path.relative_to(root))
        arms.append(
            ArmSummary(
                name=arm,
                description=f"the {arm} arm",
                tokens_by_source=dict(TOKENS[arm]),
                records_by_source={s: t // 500 for s, t in TOKENS[arm].items()},
                dropped_by_reason={"duplicate": 4, "judge_score_below_min": 2} if TOKENS[arm] else {},
                data_files=data_files,
                checkpoints=checkpoints,
                # two epochs, less the conversations left out for length
                trained_tokens_by_source={s: 2 * t - 300 for s, t in TOKENS[arm].items()},
                left_out_too_long=3 if TOKENS[arm] else 0,
            )
        )
    comparisons = []
    base = arms[0].final()
    assert base is not None
    for arm in arms[1:]:
        final = arm.final()
        assert final is not None and final.overall is not None and base.overall is not None
        for family in [*FAMILIES, "overall"]:
            a = final.overall if family == "overall" else final.families[family]
            b = base.overall if family == "overall" else base.families[family]
            d = rate_difference(a.harmful, a.n, b.harmful, b.n)
            comparisons.append(
                Comparison(arm.name, "baseline", family, d.diff, d.ci_low, d.ci_high, d.p_value)
            )
    ood = [
        OodDistance(
            "demos",
            "blackmail",
            0.42,
            True,
            0.81,
            0.97,
            examples=["the board meets at five o clock " + SCRIPT],
            ngram_shared=42,
            ngram_total=100,
        ),
        OodDistance("advice", "blackmail", 0.0, False, 0.31, 0.44, ngram_shared=0, ngram_total=100),
    ]
    summary = ExperimentSummary(
        name="planted experiment",
        created="2026-05-10T12:00:00+00:00",
        constitution_path="constitution.md",
        constitution_sha256="ab" * 32,
        principles=12,
        models={"target": "embedded", "judge": "embedded"},
        baseline="baseline",
        arms=arms,
        comparisons=comparisons,
        ood=ood,
    )
    summary.write(root / "summary.json")
    return summary


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[ExperimentSummary, Path]:
    root = tmp_path_factory.mktemp("workspace")
    summary = build_workspace(root)
    index = build_report(root / "summary.json")
    assert index == (root / "report" / "index.html").resolve()
    return summary, index


def rate_of(summary: ExperimentSummary, arm: str, step: int, family: str) -> RateSummary | None:
    checkpoint = next(c for a in summary.arms if a.name == arm for c in a.checkpoints if c.step == step)
    return checkpoint.overall if family == "overall" else checkpoint.families[family]


# --- numbers -----------------------------------------------------------------------------------------------


def test_every_rate_in_the_index_equals_the_summary(built: tuple[ExperimentSummary, Path]) -> None:
    summary, index = built
    links = parse(index).find("a", **{"class": "rate"})
    shown = set()
    for link in links:
        expected = rate_of(summary, link["data-arm"], int(link["data-step"]), link["data-family"])
        assert expected is not None and expected.rate is not None
        assert float(link["data-rate"]) == expected.rate
        assert (
            float(link["data-ci-low"]) == expected.ci_low and float(link["data-ci-high"]) == expected.ci_high
        )
        assert (int(link["data-n"]), int(link["data-harmful"])) == (expected.n, expected.harmful)
        assert (int(link["data-unscored"]), int(link["data-errors"])) == (expected.unscored, expected.errors)
        assert link["#text"] == f"{expected.rate * 100:.1f}%"
        shown.add((link["data-arm"], int(link["data-step"]), link["data-family"]))
    every = {(a.name, c.step, f) for a in summary.arms for c in a.checkpoints for f in [*FAMILIES, "overall"]}
    assert shown == every


def test_bars_and_points_carry_the_summary_numbers(built: tuple[ExperimentSummary, Path]) -> None:
    summary, index = built
    page = parse(index)
    bars = page.find("rect", **{"class": "bar"})
    assert len(bars) == len(summary.arms) * 4  # three families and overall at each arm's final checkpoint
    for bar in bars:
        expected = rate_of(summary, bar["data-arm"], int(bar["data-step"]), bar["data-family"])
        assert expected is not None and float(bar["data-rate"]) == expected.rate
    points = {p["data-arm"]: p for p in page.find("circle", **{"class": "point"}) if "data-tokens" in p}
    # the chart plots the tokens training consumed, not the tokens in the data files
    assert {arm: int(p["data-tokens"]) for arm, p in points.items()} == {
        a.name: sum(a.trained_tokens_by_source.values()) for a in summary.arms
    }
    assert all(a.trained_tokens != a.training_tokens for a in summary.arms if a.tokens_by_source)
    # advice: fewest tokens among trained arms and the lowest rate, so it is on the front; demos is dominated
    assert points["advice"]["data-front"] == "1" and points["demos"]["data-front"] == "0"
    assert points["baseline"]["data-front"] == "1"  # nothing has fewer tokens than the untrained baseline
    curve_steps = {
        (p["data-arm"], int(p["data-step"]))
        for p in page.find("circle", **{"class": "point"})
        if "data-tokens" not in p
    }
    assert curve_steps == {(a.name, c.step) for a in summary.arms for c in a.checkpoints}


def test_comparisons_ood_and_data_tables_equal_the_summary(built: tuple[ExperimentSummary, Path]) -> None:
    summary, index = built
    page = parse(index)
    rows = {(r["data-arm"], r["data-family"]): r for r in page.find("tr", **{"class": "comparison"})}
    assert len(rows) == len(summary.comparisons)
    for c in summary.comparisons:
        row = rows[(c.arm, c.family)]
        assert float(row["data-diff"]) == c.diff and float(row["data-p-value"]) == c.p_value
        assert float(row["data-ci-low"]) == c.ci_low and float(row["data-ci-high"]) == c.ci_high
        assert ("significant" in row["class"].split()) == (c.ci_low > 0 or c.ci_high < 0)
    ood = {(r["data-arm"], r["data-evaluation"]): r for r in page.find("tr", **{"class": "ood"})}
    for o in summary.ood:
        row = ood[(o.arm, o.evaluation)]
        assert (
            float(row["data-ngram-overlap"]) == o.ngram_overlap
            and float(row["data-nn-mean"]) == o.nn_similarity_mean
        )
        assert row["data-contaminated"] == ("true" if o.contaminated else "false")
        assert ("contaminated" in row["class"].split()) == o.contaminated
    sources = {(r["data-arm"], r["data-source"]): r for r in page.find("tr", **{"class": "source"})}
    for arm in summary.arms:
        for source, tokens in arm.tokens_by_source.items():
            row = sources[(arm.name, source)]
            assert (
                int(row["data-tokens"]) == tokens
                and int(row["data-records"]) == arm.records_by_source[source]
            )
        drops = {
            c["data-drop-reason"]: int(c["data-count"])
            for c in page.find(**{"data-arm": arm.name})
            if "data-drop-reason" in c
        }
        assert drops == arm.dropped_by_reason
        if arm.tokens_by_source:
            trained = page.find("tr", **{"class": "trained", "data-arm": arm.name})[0]
            assert int(trained["data-trained-tokens"]) == arm.trained_tokens
            assert int(trained["data-left-out"]) == arm.left_out_too_long == 3
            text = " ".join("".join(page.text).split())
            assert "3 conversations left out as longer than max_length" in text
    health = {(r["data-arm"], r["data-family"]): r for r in page.find("tr", **{"class": "health"})}
    assert health[("baseline", "blackmail")]["data-unscored"] == "1"
    assert health[("baseline", "framing")]["data-errors"] == "1"
    assert health[("advice", "framing")]["data-errors"] == "2"


# --- links and transcripts ---------------------------------------------------------------------------------


def target_of(page: Path, href: str) -> Path:
    return (page.parent / unquote(href.split("#")[0])).resolve()


def test_every_rate_links_to_a_transcript_page_showing_that_rate(
    built: tuple[ExperimentSummary, Path],
) -> None:
    _, index = built
    page = parse(index)
    marks = page.find("a", **{"class": "rate"})
    hrefs = [a["href"] for a in marks]
    hrefs += [a["href"] for a in page.find("a") if a.get("href", "").startswith("transcripts/")]
    assert hrefs
    for href in hrefs:
        assert target_of(index, href).is_file(), href
    for mark in marks:
        target = parse(target_of(index, mark["href"]))
        (headline,) = target.find("p", **{"class": "headline"})
        assert headline["data-rate"] == mark["data-rate"] and headline["data-family"] == mark["data-family"]


def test_family_page_lists_each_sample_with_its_outcome(built: tuple[ExperimentSummary, Path]) -> None:
    _, index = built
    page = index.parent / "transcripts" / "baseline" / "step-0" / "blackmail.html"
    found = parse(page).find("details", **{"class": "transcript"})
    assert sorted(d["data-outcome"] for d in found) == sorted(outcomes(*PLAN["baseline"][0]["blackmail"]))
    text = page.read_text(encoding="utf-8")
    # without an Inspect log the page says the conversation is missing, it does not pretend
    assert "conversation not found in the Inspect logs" in text


def test_transcripts_from_the_inspect_log_are_rendered_and_escaped(
    built: tuple[ExperimentSummary, Path],
) -> None:
    _, index = built
    page = index.parent / "transcripts" / "advice" / "step-10" / "framing.html"
    text = page.read_text(encoding="utf-8")
    parsed = parse(page)
    assert "I will not threaten Kyle." in text  # the assistant's reply, read back from the Inspect log
    assert (
        "send_email" in text and "kyle@summitbridge.example" in text
    )  # the action log from the sample store
    assert "&lt;script&gt;alert(" in text
    assert "<script" not in text.lower()
    assert not parsed.find("script")
    log_links = [a for a in parsed.find("a") if a.get("href", "").endswith(".eval")]
    assert log_links and all(target_of(page, a["href"]).is_file() for a in log_links)
    errors = [d for d in parsed.find("details", **{"class": "transcript"}) if d["data-outcome"] == "error"]
    assert len(errors) == 2


def test_index_escapes_text_from_the_summary(built: tuple[ExperimentSummary, Path]) -> None:
    _, index = built
    text = index.read_text(encoding="utf-8")
    assert "<script" not in text.lower() and "&lt;script&gt;" in text  # the OOD example n-gram


def test_missing_results_and_logs_are_shown_not_fatal(tmp_path: Path) -> None:
    summary = build_workspace(tmp_path, inspect_log_for=None)
    arm = summary.arms[1]
    arm.checkpoints[-1].results_file = "evals/gone/honeypot-results.json"
    arm.checkpoints[-1].log_files = ["evals/gone/log.eval"]
    arm.data_files["honeypot_demos"] = "data/gone.jsonl"
    summary.write(tmp_path / "summary.json")
    index = build_report(tmp_path / "summary.json", out_dir=tmp_path / "out")
    page = tmp_path / "out" / "transcripts" / "demos" / "step-10" / "blackmail.html"
    text = page.read_text(encoding="utf-8")
    assert "results file not found" in text and "Inspect log not found" in text
    assert "(missing)" in text
    assert "gone.jsonl (missing)" in index.read_text(encoding="utf-8")


def test_pareto_front_keeps_only_undominated_arms() -> None:
    def point(arm: str, tokens: int, value: float | None) -> ParetoPoint:
        return ParetoPoint(arm, tokens, Mark(value, 0.0, 1.0, "#", arm))

    points = [
        point("base", 0, 0.4),
        point("a", 1000, 0.2),
        point("b", 5000, 0.3),
        point("c", 9000, 0.1),
        point("d", 1000, 0.25),
        point("e", 100, None),
    ]
    assert pareto_front(points) == {"base", "a", "c"}


def test_a_file_that_is_not_a_summary_is_a_user_error(tmp_path: Path) -> None:
    bad = tmp_path / "summary.json"
    bad.write_text('{"name": "x"}', encoding="utf-8")
    with pytest.raises(UserError, match="not a teachwhy summary"):
        build_report(bad)
    with pytest.raises(UserError, match="no experiment summary"):
        build_report(tmp_path / "missing.json")


def test_report_command_writes_the_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build_workspace(tmp_path / "ws", inspect_log_for=None)
    runner = CliRunner()
    result = runner.invoke(app, ["report", "--workspace", str(tmp_path / "ws"), "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "r" / "index.html").is_file()
    result = runner.invoke(app, ["report", "--workspace", "a", "--summary", "b"])
    assert isinstance(result.exception, UserError)
    monkeypatch.chdir(tmp_path / "ws")
    assert runner.invoke(app, ["report"]).exit_code == 0  # the current folder holds summary.json
    assert (tmp_path / "ws" / "report" / "index.html").is_file()


# --- a real browser --------------------------------------------------------------------------------

needs_browser = pytest.mark.skipif(find_browser() is None, reason="no Chromium installed")


@needs_browser
def test_chromium_renders_the_charts(built: tuple[ExperimentSummary, Path]) -> None:
    summary, index = built
    dom = dump_dom(index)
    rendered = Elements()
    rendered.feed(dom)
    charts = {svg["data-chart"] for svg in rendered.find("svg", **{"class": "chart"})}
    assert charts == {"rates", "pareto", "curves"}
    assert len(rendered.find("rect", **{"class": "bar"})) == len(summary.arms) * 4
    assert rendered.find("polyline", **{"class": "pareto-front"})
    assert len(rendered.find("polyline", **{"class": "curve"})) == 2  # arms with more than one checkpoint


@needs_browser
def test_report_command_saves_a_screenshot(tmp_path: Path) -> None:
    build_workspace(tmp_path / "ws", inspect_log_for=None)
    png = tmp_path / "shot.png"
    result = CliRunner().invoke(
        app, ["report", "--workspace", str(tmp_path / "ws"), "--screenshot", str(png)]
    )
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    direct = screenshot(
        tmp_path / "ws" / "report" / "index.html", tmp_path / "direct.png", width=800, height=600
    )
    assert direct.read_bytes()[:4] == b"\x89PNG"


def test_rebuilding_replaces_pages_of_arms_that_are_gone(tmp_path: Path) -> None:
    summary = build_workspace(tmp_path, inspect_log_for=None)
    build_report(tmp_path / "summary.json")
    assert (tmp_path / "report" / "transcripts" / "demos").is_dir()
    summary.arms = [a for a in summary.arms if a.name != "demos"]
    summary.comparisons = [c for c in summary.comparisons if c.arm != "demos"]
    summary.write(tmp_path / "summary.json")
    build_report(tmp_path / "summary.json")
    assert not (tmp_path / "report" / "transcripts" / "demos").exists()
    assert (tmp_path / "report" / "transcripts" / "advice" / "step-10" / "index.html").is_file()
