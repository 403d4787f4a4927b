"""The experiment as a whole: a real run of every stage, caching, invalidation, kill -9 and resume, status.

The generator is a scripted Inspect provider (tests/pipeline_support.py) and the target a tiny random Llama,
so every stage runs for real (generation through Inspect, LoRA training, honeypot evals on checkpoints through
the embedded provider, OOD with MiniLM, the summary) in seconds rather than minutes.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from safetensors.torch import load_file

import pipeline_support
from teachwhy.config import load_config
from teachwhy.constitution import example_constitution_path
from teachwhy.experiment.pipeline import ExperimentPipeline
from teachwhy.experiment.stages import StageRecord, StageRunner
from teachwhy.experiment.summary import ExperimentSummary

TESTS = Path(__file__).parent


@pytest.fixture(scope="module")
def tiny_target(tmp_path_factory: pytest.TempPathFactory, embedded_model_dir: Path) -> Path:
    return pipeline_support.build_tiny_target(tmp_path_factory.mktemp("tiny-target"), embedded_model_dir)


def workspace(root: Path, target: Path, **kwargs: Any) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(example_constitution_path(), root / "constitution.md")
    config = root / "teachwhy.yaml"
    config.write_text(pipeline_support.experiment_yaml(target, **kwargs))
    return config


def run(config_path: Path) -> tuple[ExperimentSummary | None, list[tuple[str, StageRecord]]]:
    events: list[tuple[str, StageRecord]] = []
    runner = StageRunner(load_config(config_path).workspace_path, on_event=lambda e, r: events.append((e, r)))
    summary = ExperimentPipeline(load_config(config_path), runner).run()
    return summary, events


def ran(events: list[tuple[str, StageRecord]]) -> set[str]:
    return {r.stage_id for e, r in events if e == "done"}


def test_a_run_produces_every_stage_and_a_rerun_makes_no_model_calls(
    tmp_path: Path, tiny_target: Path
) -> None:
    config = workspace(tmp_path / "exp", tiny_target)
    summary, events = run(config)
    assert summary is not None
    assert ran(events) == {
        "controls/rule",
        "eval/step-0",
        "generate/advice.advice",
        "mix/advice",
        "train/advice",
        "eval/advice/step-2",
        "eval/advice/step-4",
        "ood/advice",
        "generate/stories.stories",
        "mix/stories",
        "train/stories",
        "eval/stories/step-2",
        "eval/stories/step-4",
        "ood/stories",
    }
    arms = {a.name: a for a in summary.arms}
    assert [c.step for c in arms["baseline"].checkpoints] == [0]
    assert [c.step for c in arms["advice"].checkpoints] == [0, 2, 4]
    assert arms["advice"].tokens_by_source["advice"] > 0
    assert {(o.arm, o.evaluation) for o in summary.ood} == {("advice", "blackmail"), ("stories", "blackmail")}
    assert {o.split for o in summary.ood} == {"heldout"}
    assert all(c.indicators for a in summary.arms for c in a.checkpoints)  # every checkpoint's indicators
    # the tiny random target never stops on its own, so its episodes end cut off and unscored: comparisons
    # appear only for what was scored, and every episode is counted somewhere
    assert {c.arm for c in summary.comparisons} <= {"advice", "stories"}
    written = json.loads((tmp_path / "exp" / "runs" / "summary.json").read_text())
    cell = written["arms"][1]["checkpoints"][2]["families"]["blackmail"]
    assert cell["n"] + cell["unscored"] + cell["errors"] == 1
    assert written["controls"]["policy"] == "rule" and written["controls"]["played"] > 0

    pipeline_support.CALLS.clear()
    again, events = run(config)
    assert pipeline_support.CALLS == []
    assert ran(events) == set() and {e for e, _ in events} == {"cached"}
    assert again is not None and again.arms == summary.arms


def test_changing_one_arm_reruns_only_what_depends_on_it(tmp_path: Path, tiny_target: Path) -> None:
    config = workspace(tmp_path / "exp", tiny_target)
    run(config)
    workspace(tmp_path / "exp", tiny_target, advice_count=4)
    _, events = run(config)
    assert ran(events) == {
        "generate/advice.advice",
        "mix/advice",
        "train/advice",
        "eval/advice/step-2",
        "eval/advice/step-4",
        "ood/advice",
    }


def test_status_reports_stale_and_pending_stages_without_running_them(
    tmp_path: Path, tiny_target: Path
) -> None:
    config = workspace(tmp_path / "exp", tiny_target)
    runner = StageRunner(load_config(config).workspace_path, dry_run=True)
    assert ExperimentPipeline(load_config(config), runner).run() is None
    states = {r.stage_id: r.state for r in runner.records}
    assert states["eval/step-0"] == "pending" and states["mix/advice"] == "blocked"
    assert not (tmp_path / "exp" / "runs" / "stages" / "train").exists()

    run(config)
    workspace(tmp_path / "exp", tiny_target, advice_count=4)
    runner = StageRunner(load_config(config).workspace_path, dry_run=True)
    ExperimentPipeline(load_config(config), runner).run()
    states = {r.stage_id: r.state for r in runner.records}
    assert states["generate/advice.advice"] == "stale"
    assert states["train/advice"] == "blocked"
    assert states["train/stories"] == "done"


def _kill_during(config: Path, stage_prefix: str) -> None:
    """Start `teachwhy run` in a subprocess and SIGKILL it as soon as ``stage_prefix`` starts."""
    script = (
        f"import sys; sys.path.insert(0, {str(TESTS)!r}); import pipeline_support; "
        "from teachwhy.cli import main; main()"
    )
    log = config.parent / "runs" / "run.log"
    before = log.read_text() if log.exists() else ""
    process = subprocess.Popen(
        [sys.executable, "-c", script, "run", "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "COLUMNS": "200"},
    )
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline:
            text = log.read_text() if log.exists() else ""
            if f"start {stage_prefix}" in text[len(before) :]:
                time.sleep(0.5)  # let the stage write some of its work
                break
            assert process.poll() is None, "the run ended before reaching the stage to kill"
            time.sleep(0.05)
        else:
            raise AssertionError(f"stage {stage_prefix} never started")
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()


def _final_weights(root: Path, summary: ExperimentSummary, arm: str) -> dict[str, Any]:
    final = next(a for a in summary.arms if a.name == arm).final()
    assert final is not None
    model = final.model.removeprefix("embedded/")
    return load_file(str(Path(model) / "model.safetensors"))


def test_kill_9_at_several_stages_then_run_matches_an_uninterrupted_run(
    tmp_path: Path, tiny_target: Path
) -> None:
    reference_config = workspace(tmp_path / "reference", tiny_target)
    reference, _ = run(reference_config)
    assert reference is not None

    config = workspace(tmp_path / "killed", tiny_target)
    for stage in ("generate/advice", "train/advice", "eval/advice/step-4", "ood/stories"):
        _kill_during(config, stage)
    resumed, _ = run(config)
    assert resumed is not None

    def facts(s: ExperimentSummary) -> list[Any]:
        return [
            (
                a.name,
                a.tokens_by_source,
                a.records_by_source,
                [(c.step, c.tokens_seen, c.families) for c in a.checkpoints],
            )
            for a in s.arms
        ]

    assert facts(resumed) == facts(reference)
    for name in ("advice", "stories"):
        mixed = next(a for a in resumed.arms if a.name == name).data_files["mix"]
        assert (tmp_path / "killed" / "runs" / mixed).read_bytes() == (
            tmp_path / "reference" / "runs" / mixed
        ).read_bytes()
        got, want = _final_weights(tmp_path, resumed, name), _final_weights(tmp_path, reference, name)
        assert got.keys() == want.keys()
        assert all((got[k] - want[k]).abs().max().item() < 1e-5 for k in want)
    log = (tmp_path / "killed" / "runs" / "run.log").read_text()
    assert log.count("done train/advice") == 1  # finished once, never twice
