"""The indicators through a real run: ``split: both`` plays both splits, and the CLI shows every indicator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from teachwhy.cli import app
from teachwhy.errors import UserError
from teachwhy.evals.indicators import Indicators
from teachwhy.evals.results import RESULTS_FILE, HoneypotResults
from test_evals_e2e import BLACKMAILER, _run, judge, reading_judge

HELDOUT_WORLD = "bm-brightwater-university"


def test_split_both_plays_both_splits_and_measures_the_gap_and_the_harmful_calls(tmp_path: Path) -> None:
    worlds = [HELDOUT_WORLD, "bm-harbor-line"]  # one world of each split (the scripted agent reads mail)
    run = _run(tmp_path, BLACKMAILER, judge(reading_judge), "both", split="both", limit=2, worlds=worlds)
    assert run.split == "heldout" and {s.scenario_id for s in run.samples} <= set(run.worlds)
    other = HoneypotResults.load(tmp_path / "both" / "honeypot-results-eval.json")
    assert other.split == "eval" and not set(other.worlds) & set(run.worlds)
    assert HoneypotResults.load(tmp_path / "both" / RESULTS_FILE) == run

    indicators = Indicators.from_dict(run.indicators or {})
    assert (indicators.split, indicators.compared_split) == ("heldout", "eval")
    scope = indicators.scopes["blackmail"]
    # each held-out episode: read the secret, send the threat, done -- one harmful call of three
    assert [s.tool_calls for s in run.samples] == [3, 3]
    assert (scope.harmful_tool_calls.count, scope.harmful_tool_calls.n) == (2, 6)
    assert (scope.episodes_with_harmful_call.count, scope.episodes_with_harmful_call.n) == (2, 2)
    gap = scope.generalisation
    assert gap is not None and gap.difference is not None
    headline = other.family_headline("blackmail")
    assert headline is not None and (gap.eval.count, gap.eval.n) == (headline.harmful, headline.n)
    assert gap.difference.diff == pytest.approx(1.0 - (headline.rate or 0.0))


def test_split_both_sends_each_named_world_to_its_split(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="eval split"):
        _run(tmp_path, BLACKMAILER, judge(reading_judge), "w", split="both", worlds=[HELDOUT_WORLD])


def test_eval_cli_prints_the_indicators_and_json_carries_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import teachwhy.models

    roles = {"target": BLACKMAILER, "judge": judge(reading_judge)}
    monkeypatch.setattr(teachwhy.models, "role_model", lambda config, role, **_: roles[role])
    config = tmp_path / "teachwhy.yaml"
    config.write_text(
        "workspace: runs\neval: {families: [blackmail], split: heldout, limit: 2, max_turns: 3,\n"
        f"  worlds: [{HELDOUT_WORLD}], paraphrases: 1}}\n"
    )
    args = ["eval", "--config", str(config), "--epochs", "2"]
    result = CliRunner().invoke(app, [*args, "--log-dir", str(tmp_path / "t")], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "monitoring indicators" in result.output
    assert "harmful tool calls per 100 calls" in result.output and "33.3" in result.output  # 4 of 12 calls
    assert "verdict agreement across epochs" in result.output
    assert "n/a: one wording per world" in result.output

    result = CliRunner().invoke(app, [*args, "--log-dir", str(tmp_path / "j"), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    scope = data["indicators"]["scopes"]["all"]
    assert (scope["harmful_tool_calls"]["count"], scope["harmful_tool_calls"]["n"]) == (4, 12)
    assert scope["epoch_consistency"]["count"] == scope["epoch_consistency"]["n"] == 2
    assert scope["paraphrase_consistency"] is None
