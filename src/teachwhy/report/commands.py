"""`teachwhy report`: write the static HTML report of an experiment (and optionally a screenshot of it)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from teachwhy.errors import UserError
from teachwhy.jsonout import make_console

SUMMARY_NAME = "summary.json"
console = make_console()


def report(
    workspace: Annotated[
        Path | None, typer.Option("--workspace", "-w", help="The experiment workspace holding summary.json.")
    ] = None,
    summary: Annotated[
        Path | None, typer.Option("--summary", help="A summary.json (its folder is the workspace).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Output folder (default: <workspace>/report).")
    ] = None,
    screenshot: Annotated[
        Path | None,
        typer.Option("--screenshot", help="Also save a PNG of the report, rendered by headless Chromium."),
    ] = None,
) -> None:
    """Write the static HTML report (index.html + transcript pages) that opens offline with no server."""
    from teachwhy.report import build_report
    from teachwhy.report import screenshot as take_screenshot

    if workspace is not None and summary is not None:
        raise UserError("give --workspace or --summary, not both", key="--summary")
    if summary is None:
        summary = (workspace if workspace is not None else _default_workspace()) / SUMMARY_NAME
    index = build_report(summary, out_dir=out, workspace=workspace)
    console.print(f"wrote {index}")
    if screenshot is not None:
        console.print(f"wrote {take_screenshot(index, screenshot)}")


def _default_workspace() -> Path:
    """The workspace of ``./teachwhy.yaml`` if there is one, else the current folder."""
    from teachwhy.cli_options import DEFAULT_CONFIG, load_experiment

    if DEFAULT_CONFIG.exists():
        return load_experiment(DEFAULT_CONFIG).workspace_path
    return Path.cwd()
