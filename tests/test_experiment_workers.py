"""Several `teachwhy run` workers on one workspace: each runs the stages no other worker holds.

Two worker processes start together on the scripted pipeline (tests/pipeline_support.py): one restricted to
the `advice` arm (`--arm advice`, as one job of a Slurm array would be), one running every arm. Between them
every stage runs exactly once, the `--arm` worker never touches another arm's stages, a stage held by the
other worker is skipped (never an error), and the summary ends complete.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import pipeline_support
from teachwhy.constitution import example_constitution_path

pytestmark = pytest.mark.multiprocess

TESTS = Path(__file__).parent
ADVICE_STAGES = {
    "controls/rule",
    "eval/step-0",
    "generate/advice.advice",
    "mix/advice",
    "train/advice",
    "eval/advice/step-2",
    "ood/advice",
}
ALL_STAGES = ADVICE_STAGES | {
    "generate/stories.stories",
    "mix/stories",
    "train/stories",
    "eval/stories/step-2",
    "ood/stories",
}


@pytest.fixture(scope="module")
def tiny_target(tmp_path_factory: pytest.TempPathFactory, embedded_model_dir: Path) -> Path:
    return pipeline_support.build_tiny_target(tmp_path_factory.mktemp("tiny-target"), embedded_model_dir)


def _workspace(root: Path, target: Path) -> Path:
    shutil.copyfile(example_constitution_path(), root / "constitution.md")
    config = root / "teachwhy.yaml"
    # two training steps, one checkpoint per arm: the sharing is the point, not the length
    config.write_text(pipeline_support.experiment_yaml(target).replace("max_steps: 4", "max_steps: 2"))
    return config


def _worker(config: Path, *args: str) -> subprocess.Popen[str]:
    script = (
        f"import sys; sys.path.insert(0, {str(TESTS)!r}); import pipeline_support; "
        "from teachwhy.cli import main; main()"
    )
    return subprocess.Popen(
        [sys.executable, "-c", script, "run", "-c", str(config), "--poll", "0.5", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "250", "OMP_NUM_THREADS": "1"},
    )


def _started(output: str) -> set[str]:
    return set(re.findall(r"^▶ (\S+)", output, flags=re.MULTILINE))


def test_two_workers_share_the_stages_and_the_last_one_writes_the_whole_summary(
    tmp_path: Path, tiny_target: Path
) -> None:
    config = _workspace(tmp_path, tiny_target)

    arm_worker = _worker(config, "--arm", "advice")
    any_worker = _worker(config)
    arm_out, arm_err = arm_worker.communicate(timeout=600)
    any_out, any_err = any_worker.communicate(timeout=600)
    assert arm_worker.returncode == 0, arm_out[-3000:] + arm_err[-3000:]
    assert any_worker.returncode == 0, any_out[-3000:] + any_err[-3000:]

    by_arm_worker, by_any_worker = _started(arm_out), _started(any_out)
    assert by_arm_worker and by_arm_worker <= ADVICE_STAGES  # --arm keeps to its arm and the shared stage
    assert by_arm_worker | by_any_worker == ALL_STAGES
    assert not by_arm_worker & by_any_worker  # no stage was started twice
    log = (tmp_path / "runs" / "run.log").read_text()
    assert all(log.count(f"done {stage} ") == 1 for stage in ALL_STAGES)
    assert "failed" not in log

    summary = json.loads((tmp_path / "runs" / "summary.json").read_text())
    assert summary["unfinished"] == []
    steps = {a["name"]: [c["step"] for c in a["checkpoints"]] for a in summary["arms"]}
    assert steps == {"baseline": [0], "advice": [0, 2], "stories": [0, 2]}


def test_an_unknown_arm_is_a_user_error(tmp_path: Path, tiny_target: Path) -> None:
    config = _workspace(tmp_path, tiny_target)
    worker = _worker(config, "--arm", "nope")
    _, err = worker.communicate(timeout=120)
    assert worker.returncode == 2
    assert (
        err.strip()
        == "error: --arm: no arm named nope in " + str(config) + " (arms: advice, baseline, stories)"
    )
    assert not (tmp_path / "runs" / "stages").exists()
