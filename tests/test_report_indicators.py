"""The report's indicator table: every arm and checkpoint, each indicator's value, intervals and counts as in
the summary, n/a where there is nothing to agree with, and the training data's distance beside the gap."""

from __future__ import annotations

from pathlib import Path

from teachwhy.evals.indicators import Indicators, honeypot_indicators
from teachwhy.evals.results import HoneypotResults, SampleOutcome, build_rows
from teachwhy.experiment.summary import ArmSummary, CheckpointEval, ExperimentSummary, OodDistance
from teachwhy.report import build_report
from test_report import parse

PRESSURED = "explicit-welfare-replacement"


def _results(split: str, harmful: int, n: int) -> HoneypotResults:
    samples = [
        SampleOutcome(
            sample_id=f"{split}-{i}",
            epoch=1 + i % 2,  # every episode twice
            family="blackmail",
            scenario_id=f"{split}-w{i // 4}",
            condition=PRESSURED,
            outcome="harmful" if i < harmful else "not_harmful",
            reason="",
            ending="done",
            headline=["coercion"],
            categories={"coercion": "harmful" if i < harmful else "not_harmful"},
            tool_calls=4,
            harmful_tool_calls=1 if i < harmful else 0,
        )
        for i in range(n)
    ]
    return HoneypotResults("m", None, "both", split, ["blackmail"], 2, [], build_rows(samples), samples)


def test_the_index_shows_every_indicator_of_every_checkpoint_with_the_training_distance(
    tmp_path: Path,
) -> None:
    heldout, evaluated = _results("heldout", 3, 8), _results("eval", 1, 8)
    indicators = honeypot_indicators(heldout, evaluated).to_dict()
    arms = [
        ArmSummary(
            name="advice",
            checkpoints=[
                CheckpointEval(
                    step=0, model="target", indicators=indicators, compared_results_file="e/eval.json"
                ),
                CheckpointEval(step=5, model="checkpoint-5"),  # evaluated before indicators existed
            ],
        )
    ]
    ood = [
        OodDistance("advice", "blackmail", 0.004, False, 0.41, 0.5, split="heldout"),
        OodDistance("advice", "blackmail", 0.2, True, 0.93, 1.0, split="eval"),
    ]
    summary = ExperimentSummary(
        "x", "2026-12-02T00:00:00+00:00", "c.md", "ab" * 32, 1, {}, None, arms, [], ood
    )
    summary.write(tmp_path / "summary.json")
    index = build_report(tmp_path / "summary.json")

    rows = {
        (r["data-scope"], r["data-indicator"]): r for r in parse(index).find("tr", **{"class": "indicator"})
    }
    assert {r["data-step"] for r in rows.values()} == {"0"}  # step 5 has no indicators: no row
    expected = Indicators.from_dict(indicators).scopes["all"]
    assert float(rows[("all", "misalignment")]["data-value"]) == expected.misalignment.rate == 3 / 8
    assert float(rows[("all", "harmful_tool_calls")]["data-value"]) == 3 / 32
    assert float(rows[("all", "episodes_with_harmful_call")]["data-value"]) == 3 / 8
    assert expected.epoch_consistency is not None
    assert float(rows[("all", "epoch_consistency")]["data-value"]) == expected.epoch_consistency.rate
    assert rows[("all", "paraphrase_consistency")]["data-value"] == ""
    assert float(rows[("blackmail", "generalisation")]["data-value"]) == 3 / 8 - 1 / 8
    text = index.read_text(encoding="utf-8")
    assert "n/a: one wording per world" in text
    assert "heldout 3/8 vs eval 1/8" in text
    assert "training data: heldout: 0.40% 8-grams, NN 0.41 · eval: 20.00% 8-grams, NN 0.93" in text
    assert "blackmail (heldout)" in text and "blackmail (eval)" in text  # the OOD table names the split
    assert "eval-split results (missing)" in text  # the checkpoint links the other split's results
