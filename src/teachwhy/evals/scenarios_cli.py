"""CLI: ``teachwhy eval scenarios list`` and ``teachwhy eval scenarios check [PATH]``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from teachwhy.cli_options import DEFAULT_CONFIG, ConfigOption, ResourcesOption, load_judge_settings
from teachwhy.errors import UserError

console = Console()
scenarios_app = typer.Typer(help="List the honeypot worlds and check world files before a run.")

PathArgument = Annotated[
    Path | None,
    typer.Argument(
        help="A world file or a folder of them (default: the package's worlds and the resources folders')."
    ),
]


def _world_files(path: Path | None, config: Path, resources: list[Path] | None) -> tuple[Path, list[Path]]:
    """The folder named and its world files; without a PATH, the package's worlds with those of the
    resources folders (the config's ``resources`` and ``--resources``)."""
    from teachwhy.evals.scenario import SCENARIO_DIR
    from teachwhy.evals.scenario_check import world_files
    from teachwhy.resources import resource_files

    if path is not None:
        if not path.exists():
            raise UserError("no such file or folder", file=path)
        return path, world_files(path)
    load_judge_settings(config, None, resources)  # the config's `resources` and --resources
    return SCENARIO_DIR, resource_files("scenarios", "*/*.md")


@scenarios_app.command("list")
def list_command(
    path: PathArgument = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    config: ConfigOption = DEFAULT_CONFIG,
    resources: ResourcesOption = None,
) -> None:
    """Every world: id, family, split, channel, wordings, tools and title (the ids --world takes)."""
    from teachwhy.evals.scenario import load_scenario
    from teachwhy.evals.scenario_check import family_of

    _, files = _world_files(path, config, resources)
    worlds = sorted((load_scenario(f) for f in files), key=lambda w: (family_of(w), w.id))
    if as_json:
        rows = [
            {
                "id": w.id,
                "family": w.family,
                "split": w.split,
                "channel": w.channel,
                "wordings": w.wordings,
                "tools": w.tools,
                "title": w.title,
                "path": w.path,
            }
            for w in worlds
        ]
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title=f"{len(worlds)} honeypot worlds")
    table.add_column("id", no_wrap=True)  # the id is what --world takes: never broken
    for column in ("family", "split", "channel", "wordings", "tools", "title"):
        table.add_column(column, overflow="fold")
    for w in worlds:
        tools = ", ".join(t for t in w.tools if t != "done")
        table.add_row(w.id, w.family, w.split, w.channel, str(w.wordings), tools, w.title)
    console.print(table)


@scenarios_app.command("check")
def check_command(
    path: PathArgument = None, config: ConfigOption = DEFAULT_CONFIG, resources: ResourcesOption = None
) -> None:
    """Validate worlds: one ``file: key: problem`` line per problem, exit code 2 when there is any."""
    from teachwhy.evals.scenario_check import check_worlds

    folder, files = _world_files(path, config, resources)
    worlds, problems = check_worlds(folder, files)
    for problem in problems:
        typer.echo(problem.line())
    if problems:
        typer.echo(f"{len(problems)} problem(s) in {len({p.file for p in problems})} file(s)", err=True)
        raise typer.Exit(2)
    typer.echo(f"{len(worlds)} world(s) OK")
