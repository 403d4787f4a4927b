"""The quickstart itself, end to end on the bundled model: init, the shipped organism, four arms, checkpoint
evals, report."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from teachwhy.errors import UserError
from teachwhy.quickstart import prepare_quickstart, quickstart_template


def teachwhy(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "teachwhy", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=1500,
        env={**os.environ, "COLUMNS": "200"},
    )


@pytest.mark.embedded
@pytest.mark.timeout(1800)  # about 9 minutes on 2 idle cores (the rerun: seconds); more when CI shares it
def test_quickstart_runs_the_whole_loop_and_a_rerun_does_no_work(
    tmp_path: Path, embedded_model_dir: Path
) -> None:
    first = teachwhy("quickstart", "qs", "--screenshot", "report.png", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]

    summary = json.loads((tmp_path / "qs" / "runs" / "summary.json").read_text())
    arms = {a["name"]: a for a in summary["arms"]}
    assert list(arms) == ["baseline", "organism", "advice", "documents_stories"]
    assert [c["step"] for c in arms["baseline"]["checkpoints"]] == [0]
    assert [c["step"] for c in arms["organism"]["checkpoints"]] == [0]
    # the organism is the shipped one, merged in seconds, never trained here
    organism_stage = next((tmp_path / "qs" / "runs" / "stages" / "organism").iterdir())
    assert "shipped" in json.loads((organism_stage / "result.json").read_text())
    assert not (organism_stage / "run" / "trainer").exists()
    assert summary["organism_baseline"] == "organism"
    for name in ("advice", "documents_stories"):
        arm = arms[name]
        assert arm["start_from"] == "organism"
        assert [c["step"] for c in arm["checkpoints"]] == [0, 4]
        assert arm["checkpoints"][0] == arms["organism"]["checkpoints"][0]
        assert sum(arm["tokens_by_source"].values()) > 0
    for name, arm in arms.items():
        for checkpoint in arm["checkpoints"]:
            for family, rate in checkpoint["families"].items():
                # one episode per family: it is scored, unscored or an error — never missing
                assert rate["n"] + rate["unscored"] + rate["errors"] == 1, (name, family)
    assert {o["arm"] for o in summary["ood"]} == {"advice", "documents_stories"}

    index = (tmp_path / "qs" / "runs" / "report" / "index.html").read_text()
    assert "documents_stories" in index and "Misalignment rate" in index
    assert "model organism of misalignment (research control)" in index
    if shutil.which("chromium"):
        assert (tmp_path / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    again = teachwhy("quickstart", "qs", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "▶" not in again.stdout  # no stage started: every one was found finished
    # the controls, the target's and the organism's step 0, the organism, and 5 + 6 stages of the two arms
    assert again.stdout.count("(finished earlier)") == 15


def test_quickstart_never_overwrites_another_config(tmp_path: Path) -> None:
    config = prepare_quickstart(tmp_path / "qs")
    assert config.read_text() == quickstart_template()
    assert prepare_quickstart(tmp_path / "qs") == config  # its own config: reused, so a rerun resumes
    config.write_text(config.read_text() + "\n# edited\n")
    with pytest.raises(UserError, match="is not the quickstart's config"):
        prepare_quickstart(tmp_path / "qs")
    assert config.read_text().endswith("# edited\n")
