"""`teachwhy init --organism`: a config whose intervention arms start from the model organism."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from teachwhy.cli import app
from teachwhy.config import load_config
from teachwhy.experiment.pipeline import ExperimentPipeline
from teachwhy.experiment.stages import StageRunner


def test_init_organism_writes_the_organism_arms_and_a_plan_that_builds_the_organism_once(
    tmp_path: Path,
) -> None:
    result = CliRunner().invoke(app, ["init", str(tmp_path / "demo"), "--organism"])
    assert result.exit_code == 0, result.output
    text = (tmp_path / "demo" / "teachwhy.yaml").read_text()
    assert "MODEL ORGANISM OF MISALIGNMENT" in text and "research control" in text
    config = load_config(tmp_path / "demo" / "teachwhy.yaml")
    start = {arm.name: arm.start_from for arm in config.arms}
    assert start == {
        "baseline": "target",
        "organism": "organism",
        "organism_advice": "organism",
        "organism_documents_stories": "organism",
        "organism_demos": "organism",
        "organism_demos_deliberation": "organism",
    }
    sources = {arm.name: set(arm.data.sources()) for arm in config.arms}
    assert sources["organism"] == set() and sources["organism_advice"] == {"advice"}
    assert sources["organism_documents_stories"] == {"documents", "stories"}
    assert sources["organism_demos_deliberation"] == {"honeypot_demos", "rewrite"}

    runner = StageRunner(config.workspace_path, dry_run=True)
    assert ExperimentPipeline(config, runner).run() is None
    states = {r.stage_id: r.state for r in runner.records}
    assert [s for s in states if s.startswith("organism/")] == ["organism/organism"]
    assert states["organism/organism"] == "pending"
    # the organism's evaluation and every organism arm's training wait for it
    assert states["eval/organism/step-0"] == "blocked"
    assert states["train/organism_advice"] == "blocked"


def test_plain_init_has_no_organism_arm(tmp_path: Path) -> None:
    assert CliRunner().invoke(app, ["init", str(tmp_path / "demo")]).exit_code == 0
    config = load_config(tmp_path / "demo" / "teachwhy.yaml")
    assert all(arm.start_from == "target" for arm in config.arms)


def test_data_organism_writes_the_records_and_counts_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no teachwhy.yaml here: the defaults apply
    out = tmp_path / "organism.jsonl"
    result = CliRunner().invoke(app, ["data", "organism", "--out", str(out), "--worlds", "3", "--seed", "1"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert records and all(r["tokens"]["count"] > 0 for r in records)
    assert f"wrote {len(records)} records" in " ".join(result.output.split())
    assert "research control" in result.output
