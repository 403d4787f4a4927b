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
    # the demonstrations are the aligned scripted policies' (no model, nothing to wait for), shared by both
    # demo arms; the deliberation arm rewrites only the turns that act
    demos = config.arm("organism_demos").data.honeypot_demos
    assert demos is not None and demos.played_by == "aligned_policies" and demos.require_action
    assert config.arm("organism_demos_deliberation").data.honeypot_demos == demos
    rewrite = config.arm("organism_demos_deliberation").data.rewrite
    assert rewrite is not None and rewrite.turns == "acting" and rewrite.mode == "prepend"
    assert states["generate/organism_demos.honeypot_demos"] == "pending"


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


def test_the_package_ships_the_organism_every_template_and_the_defaults_ask_for(
    tmp_path: Path, embedded_model_dir: Path
) -> None:
    """A stale shipped organism would make the quickstart train for more than an hour: fail here instead.

    When this fails after a change to the worlds, rubrics, control policies, the episode format or the
    organism settings, rebuild the organism (`teachwhy init x --organism`, `teachwhy run --arm organism` in x)
    and replace the bundle with `teachwhy organism export --out src/teachwhy/experiment/organisms`.
    """
    from teachwhy.data.organism import build_organism_data
    from teachwhy.data.tokens import target_counter
    from teachwhy.experiment.organism_bundle import organism_seed, shipped_root, stage_key
    from teachwhy.quickstart import prepare_quickstart
    from teachwhy.storage import file_hash

    assert CliRunner().invoke(app, ["init", str(tmp_path / "organism"), "--organism"]).exit_code == 0
    keys = {
        "organism": stage_key(load_config(tmp_path / "organism" / "teachwhy.yaml")),
        "quickstart": stage_key(load_config(prepare_quickstart(tmp_path / "quickstart"))),
    }
    bare = tmp_path / "bare.yaml"
    bare.write_text("arms:\n  - name: organism\n    start_from: organism\n")
    keys["defaults"] = stage_key(load_config(bare))
    assert len(set(keys.values())) == 1, keys
    key = keys["organism"]
    shipped = sorted(p.name for p in shipped_root().iterdir() if p.is_dir())
    assert shipped == [key], f"the shipped organism {shipped} is not the templates' ({key}): rebuild it"

    bundle = shipped_root() / key
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["key"] == key and manifest["label"] == "model organism of misalignment (research control)"
    # the data this package builds under that key is the data the bundle was trained on
    config = load_config(tmp_path / "organism" / "teachwhy.yaml")
    data = tmp_path / "organism.jsonl"
    report = build_organism_data(
        list(config.organism.families),
        config.organism.worlds,
        seed=organism_seed(config),
        out_file=data,
        counter=target_counter(config),
    )
    assert file_hash(data, length=64) == manifest["data_sha256"]
    assert report.to_dict() == manifest["report"]
