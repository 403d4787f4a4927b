"""`teachwhy quickstart`: init + a small experiment on the bundled model + the report, in one command."""

from __future__ import annotations

import shutil
import time
from importlib import resources
from pathlib import Path

from teachwhy.config import load_config
from teachwhy.constitution import example_constitution_path
from teachwhy.errors import UserError
from teachwhy.workspace import CONFIG_NAME, CONSTITUTION_NAME


def quickstart_template() -> str:
    return resources.files("teachwhy").joinpath("templates", "quickstart.yaml").read_text(encoding="utf-8")


def prepare_quickstart(directory: Path) -> Path:
    """Write the quickstart workspace, or reuse it when it is already there (so a rerun resumes).

    Raises:
        UserError: the folder holds a config that is not the quickstart's (it is never overwritten).
    """
    config = directory / CONFIG_NAME
    if config.exists():
        if config.read_text(encoding="utf-8") != quickstart_template():
            raise UserError(
                "exists and is not the quickstart's config; run `teachwhy run` there, or pick another folder",
                file=config,
            )
        return config
    directory.mkdir(parents=True, exist_ok=True)
    if not (directory / CONSTITUTION_NAME).exists():
        shutil.copyfile(example_constitution_path(), directory / CONSTITUTION_NAME)
    config.write_text(quickstart_template(), encoding="utf-8")
    return config


def run_quickstart(directory: Path, *, screenshot: Path | None = None) -> Path:
    """Prepare, run and report; returns the report's ``index.html``."""
    from rich.console import Console

    from teachwhy.experiment.commands import run_experiment
    from teachwhy.report import build_report, find_browser
    from teachwhy.report import screenshot as take_screenshot

    console = Console()
    started = time.perf_counter()
    config = load_config(prepare_quickstart(directory))
    console.print(
        f"[bold]teachwhy quickstart[/bold] in {directory} (bundled model, CPU): the target, the shipped "
        "model organism of misalignment (a research control), and the organism + advice, + documents "
        "and stories"
    )
    run_experiment(config)
    index = build_report(config.workspace_path / "summary.json")
    if screenshot is not None:
        if find_browser() is None:
            console.print("[yellow]no Chromium found: skipped the screenshot[/yellow]")
        else:
            take_screenshot(index, screenshot)
            console.print(f"screenshot: {screenshot}")
    console.print(f"[bold green]done in {time.perf_counter() - started:.0f}s[/bold green] — report: {index}")
    return index
