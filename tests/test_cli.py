"""The command line as a user runs it: real subprocesses, real exit codes, one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml


def teachwhy(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "teachwhy", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", "HOME": str(cwd), **_passthrough()},
    )


def _passthrough() -> dict[str, str]:
    import os

    keep = ("TEACHWHY_CACHE", "XDG_CACHE_HOME", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "PYTHONPATH")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    # the embedded model is materialised into the invoking user's cache, not the test's fake HOME
    env.setdefault("TEACHWHY_CACHE", str(Path.home() / ".cache" / "teachwhy"))
    return env


def test_init_writes_a_workspace_that_validates(tmp_path: Path) -> None:
    result = teachwhy("init", "demo", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "demo" / "constitution.md").exists()
    check = teachwhy("config", "check", cwd=tmp_path / "demo")
    assert check.returncode == 0, check.stderr
    assert "24 principles" in check.stdout


def test_init_never_overwrites_without_force(tmp_path: Path) -> None:
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "constitution.md").write_text("# Mine\n\n## Values\n\n1. Keep this.\n")
    result = teachwhy("init", "demo", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: demo/constitution.md: already exists; nothing was written (use --force to overwrite)"
    )
    assert (tmp_path / "demo" / "constitution.md").read_text().startswith("# Mine")
    assert not (tmp_path / "demo" / "teachwhy.yaml").exists()


def test_constitution_show_lists_stable_ids(tmp_path: Path) -> None:
    path = tmp_path / "values.md"
    path.write_text(
        "# Values\n\n## Honesty\n\n- **Do not deceive.** Trust needs it.\n- **Admit mistakes.** So do we.\n"
    )
    result = teachwhy("constitution", "show", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "honesty/do-not-deceive" in result.stdout
    assert "honesty/admit-mistakes" in result.stdout


def test_bad_config_is_one_line_naming_file_and_key_with_exit_2(tmp_path: Path) -> None:
    assert teachwhy("init", "demo", cwd=tmp_path).returncode == 0
    config = tmp_path / "demo" / "teachwhy.yaml"
    data = yaml.safe_load(config.read_text())
    data["arms"][3]["data"]["advice"]["count"] = 0
    config.write_text(yaml.safe_dump(data))
    result = teachwhy("config", "check", "--config", "demo/teachwhy.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == "error: demo/teachwhy.yaml: arms[3].data.advice.count: must be > 0\n"


def test_empty_constitution_is_a_user_error(tmp_path: Path) -> None:
    (tmp_path / "empty.md").write_text("\n")
    result = teachwhy("constitution", "show", "empty.md", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("error: empty.md")
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1


def test_missing_config_is_a_user_error(tmp_path: Path) -> None:
    result = teachwhy("models", "check", "--config", "nope.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("error: nope.yaml: config file not found")


def test_models_check_with_a_bad_override_fails_cleanly(tmp_path: Path) -> None:
    assert teachwhy("init", ".", cwd=tmp_path).returncode == 0
    result = teachwhy("models", "check", "--judge", "gpt4", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("error: --judge: must be 'embedded' or an Inspect model string")


def test_models_check_reports_an_unreachable_role_and_exits_nonzero(tmp_path: Path) -> None:
    assert teachwhy("init", ".", cwd=tmp_path).returncode == 0
    config = tmp_path / "teachwhy.yaml"
    data = yaml.safe_load(config.read_text())
    data["models"]["judge"] = {"model": "openai-api/nokey/m", "base_url": "http://127.0.0.1:9/v1"}
    config.write_text(yaml.safe_dump(data))
    result = teachwhy("models", "check", "--role", "judge", cwd=tmp_path)
    assert result.returncode == 1
    assert "error: judge: models.judge: openai-api/nokey/m: set the environment variable NOKEY_API_KEY" in (
        result.stderr
    )
