"""Each malformed input in tests/malformed/ gives one line naming the file and key, exit code 2, no traceback.

Each case is a folder: ``case.yaml`` (the command, and the file and key the message must name) plus the files
that differ from ``_base/`` (a valid ``teachwhy.yaml`` and constitution). Cases with ``patch`` add or replace
files of a packaged data area (``scenarios``, ``calibration``, ``prompts``, ``rubrics``) through a user
overlay folder (the config's ``resources``, see teachwhy.resources), as a user would. The command runs through
the real CLI entry point in the case's folder; afterwards every file that was there before must be
byte-for-byte unchanged.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import yaml

MALFORMED = Path(__file__).parent / "malformed"
CASES = sorted(p.name for p in MALFORMED.iterdir() if p.is_dir() and not p.name.startswith("_"))


def test_the_corpus_is_large_and_covers_every_kind_of_input() -> None:
    assert len(CASES) >= 40
    kinds = {name.split("-")[0] for name in CASES}
    assert {"config", "constitution", "dataset", "scenario", "calibration", "prompt", "results"} <= kinds


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("name", CASES)
def test_malformed_input_is_one_line_naming_file_and_key_with_exit_code_2(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from teachwhy.cli import main

    case = yaml.safe_load((MALFORMED / name / "case.yaml").read_text())
    work = tmp_path / "ws"
    shutil.copytree(MALFORMED / "_base", work)
    shutil.copytree(MALFORMED / name, work, dirs_exist_ok=True)
    (work / "case.yaml").unlink()
    if "patch" in case:  # the case's data folder is a user overlay named by the config's `resources`
        (work / "overlay").mkdir()
        shutil.move(work / case["patch"], work / "overlay" / case["patch"])
        with (work / "teachwhy.yaml").open("a", encoding="utf-8") as config:
            config.write("\nresources: [overlay]\n")
    before = _snapshot(work)
    monkeypatch.chdir(work)
    monkeypatch.setattr(sys, "argv", ["teachwhy", *case["command"]])
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    assert case["file"] in lines[0] and case["key"] in lines[0], lines[0]
    after = _snapshot(work)
    assert {k: v for k, v in after.items() if k in before} == before
