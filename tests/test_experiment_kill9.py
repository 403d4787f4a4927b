"""kill -9 at seeded random moments of `teachwhy run`, ten times, then resume: as if never interrupted.

Each trial starts `teachwhy run` in a subprocess on the same workspace (so it resumes whatever the previous
trial left), waits until it has started its first stage, sleeps a delay drawn from a seeded schedule and
SIGKILLs it. After every kill the workspace must hold no duplicated record and no half-written line; after the
last one a plain run finishes the experiment, and its records, mixes and results must equal a reference run's.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import pipeline_support
from teachwhy.config import load_config
from teachwhy.constitution import example_constitution_path
from teachwhy.experiment.pipeline import ExperimentPipeline
from teachwhy.experiment.stages import StageRunner
from teachwhy.experiment.summary import ExperimentSummary

TESTS = Path(__file__).parent
TRIALS = 10
SCHEDULE_SEED = 16


@pytest.fixture(scope="module")
def tiny_target(tmp_path_factory: pytest.TempPathFactory, embedded_model_dir: Path) -> Path:
    return pipeline_support.build_tiny_target(tmp_path_factory.mktemp("tiny-target"), embedded_model_dir)


def workspace(root: Path, target: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(example_constitution_path(), root / "constitution.md")
    config = root / "teachwhy.yaml"
    # one trained arm (and the baseline) keeps each trial short; every kind of stage is still there
    config.write_text(pipeline_support.experiment_yaml(target).split("  - name: stories")[0])
    return config


def run_to_end(config: Path) -> ExperimentSummary:
    loaded = load_config(config)
    summary = ExperimentPipeline(loaded, StageRunner(loaded.workspace_path)).run()
    assert summary is not None
    return summary


STAGES = (
    "eval/step-0",
    "generate/advice",
    "mix/advice",
    "train/advice",
    "eval/advice/step-2",
    "eval/advice/step-4",
    "ood/advice",
)
"""The experiment's stages in the order `teachwhy run` starts them."""


def kill_schedule(seed: int, trials: int) -> list[tuple[int, float]]:
    """``trials`` kill points in pipeline order: (earliest stage index to kill in, delay after it starts)."""
    draw = random.Random(seed)
    stages = sorted(draw.randrange(len(STAGES)) for _ in range(trials))
    return [(stage, round(draw.uniform(0.0, 2.5), 2)) for stage in stages]


def kill_after(config: Path, stage: int, delay: float) -> bool:
    """Run `teachwhy run`; SIGKILL it ``delay`` s after it starts stage ``stage`` or a later one.

    Returns False when the run finished before that (nothing was left to kill).
    """
    script = (
        f"import sys; sys.path.insert(0, {str(TESTS)!r}); import pipeline_support; "
        "from teachwhy.cli import main; main()"
    )
    log = config.parent / "runs" / "run.log"
    before = len(log.read_text()) if log.exists() else 0
    later = tuple(f" start {name}" for name in STAGES[stage:])
    process = subprocess.Popen(
        [sys.executable, "-c", script, "run", "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "COLUMNS": "200"},
    )
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                assert process.returncode == 0, "the run failed instead of resuming"
                return False
            if log.exists() and any(s in log.read_text()[before:] for s in later):
                break
            time.sleep(0.02)
        else:
            raise AssertionError(f"the run never reached {STAGES[stage]}")
        end = time.monotonic() + delay
        while time.monotonic() < end:
            if process.poll() is not None:
                assert process.returncode == 0, "the run failed instead of resuming"
                return False
            time.sleep(0.02)
        return True
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        process.wait()


def jsonl_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.jsonl") if p.is_file())


def assert_no_duplicates_or_torn_lines(root: Path) -> None:
    for path in jsonl_files(root):
        lines = path.read_text(encoding="utf-8").splitlines()
        records = [json.loads(line) for line in lines if line.strip()]  # a torn line fails here
        ids = Counter(r["id"] for r in records if isinstance(r, dict) and "id" in r)
        repeated = [i for i, n in ids.items() if n > 1]
        assert not repeated, f"{path}: ids written twice: {repeated[:3]}"


def facts(summary: ExperimentSummary) -> list[Any]:
    return [
        (
            a.name,
            a.tokens_by_source,
            a.records_by_source,
            {k: Path(v).name for k, v in a.data_files.items()},
            [(c.step, c.tokens_seen, c.families) for c in a.checkpoints],
        )
        for a in summary.arms
    ]


def final_weights(summary: ExperimentSummary, arm: str) -> dict[str, Any]:
    from safetensors.torch import load_file

    final = next(a for a in summary.arms if a.name == arm).final()
    assert final is not None
    return load_file(str(Path(final.model.removeprefix("embedded/")) / "model.safetensors"))


def records(root: Path, summary: ExperimentSummary) -> dict[str, list[Any]]:
    """Every arm's generated and mixed records, as JSON values."""
    out: dict[str, list[Any]] = {}
    for arm in summary.arms:
        for source, file in arm.data_files.items():
            lines = (root / "runs" / file).read_text(encoding="utf-8").splitlines()
            out[f"{arm.name}:{source}"] = [json.loads(line) for line in lines]
    return out


def test_ten_seeded_kill_9s_then_resume_match_an_uninterrupted_run(tmp_path: Path, tiny_target: Path) -> None:
    reference_config = workspace(tmp_path / "reference", tiny_target)
    reference = run_to_end(reference_config)

    config = workspace(tmp_path / "killed", tiny_target)
    schedule = kill_schedule(SCHEDULE_SEED, TRIALS)
    assert len({stage for stage, _ in schedule}) >= 4  # the kills are spread over the pipeline
    killed = 0
    for stage, delay in schedule:
        if kill_after(config, stage, delay):
            killed += 1
            assert_no_duplicates_or_torn_lines(tmp_path / "killed" / "runs")
    assert killed >= TRIALS - 1, f"only {killed} of {TRIALS} runs were still going when their kill came"
    resumed = run_to_end(config)

    assert facts(resumed) == facts(reference)
    assert records(tmp_path / "killed", resumed) == records(tmp_path / "reference", reference)
    assert_no_duplicates_or_torn_lines(tmp_path / "killed" / "runs")
    for arm in resumed.arms:
        if arm.name != "baseline":
            got, want = final_weights(resumed, arm.name), final_weights(reference, arm.name)
            assert got.keys() == want.keys()
            assert all((got[k] - want[k]).abs().max().item() < 1e-5 for k in want)
    log = (tmp_path / "killed" / "runs" / "run.log").read_text()
    finished = Counter(line.split()[2] for line in log.splitlines() if line.split()[1:2] == ["done"])
    assert all(n == 1 for n in finished.values()), finished  # no stage finished twice
