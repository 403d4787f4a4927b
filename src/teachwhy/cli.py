"""The `teachwhy` command line. Each stage contributes its commands; this module only wires them together.

Errors a user can cause are printed as one line naming the file and key, with exit code 2.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from teachwhy import __version__
from teachwhy.assessment import commands as assessment_commands
from teachwhy.cli_options import (
    DEFAULT_CONFIG,
    AuditorOption,
    ConfigOption,
    GeneratorOption,
    JudgeOption,
    TargetOption,
    load_experiment,
)
from teachwhy.config import ROLES
from teachwhy.data import commands as data_commands
from teachwhy.data.chat_commands import register as register_chat_data_commands
from teachwhy.data.import_export import register as register_import_export_commands
from teachwhy.errors import UserError
from teachwhy.evals import commands as eval_commands
from teachwhy.evals import controls_cli, judge_check
from teachwhy.experiment import commands as experiment_commands
from teachwhy.jsonout import JsonOption, emit_json, make_console
from teachwhy.models.bench import bench_embedded
from teachwhy.models.bench_dtype import bench_dtype
from teachwhy.report import commands as report_commands
from teachwhy.train import commands as train_commands

app = typer.Typer(
    name="teachwhy",
    help="Teach a model the reasons behind its values, then measure whether it learned them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
constitution_app = typer.Typer(help="Inspect a constitution.", no_args_is_help=True)
models_app = typer.Typer(help="Check the configured model roles.", no_args_is_help=True)
config_app = typer.Typer(help="Validate an experiment file.", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks that print side-by-side ratios.", no_args_is_help=True)
organism_app = typer.Typer(
    help="The model organism of misalignment (a research control).", no_args_is_help=True
)
app.add_typer(constitution_app, name="constitution")
app.add_typer(models_app, name="models")
app.add_typer(config_app, name="config")
app.add_typer(bench_app, name="bench")
app.add_typer(data_commands.data_app, name="data")
register_chat_data_commands(data_commands.generate_app)
register_import_export_commands(data_commands.data_app)
bench_app.command("dedup")(data_commands.bench_dedup_command)
app.command("train")(train_commands.train_command)
bench_app.command("train")(train_commands.bench_train_command)
eval_commands.eval_app.command("controls")(controls_cli.controls_command)
app.add_typer(eval_commands.eval_app, name="eval")
eval_commands.eval_app.command("assessment")(assessment_commands.assessment_command)
eval_commands.eval_app.command("adherence")(assessment_commands.adherence_command)
app.command("judge-check")(judge_check.judge_check_command)
app.command("report")(report_commands.report)
bench_app.command("embedded")(bench_embedded)
bench_app.command("dtype")(bench_dtype)
app.command("run")(experiment_commands.run_command)
app.command("status")(experiment_commands.status_command)
organism_app.command("export")(experiment_commands.export_organism_command)
app.add_typer(organism_app, name="organism")


@app.command()
def quickstart(
    directory: Annotated[Path, typer.Argument(help="Workspace folder (reused on a rerun).")] = Path(
        "quickstart"
    ),
    screenshot: Annotated[
        Path | None, typer.Option("--screenshot", help="Also save a PNG of the report (needs Chromium).")
    ] = None,
) -> None:
    """The whole loop on the bundled model: init, four arms (the target, the shipped model organism, the
    organism + two interventions), and the HTML report."""
    from teachwhy.quickstart import run_quickstart

    run_quickstart(directory, screenshot=screenshot)


console = make_console()


@app.callback()
def _root(
    ctx: typer.Context,
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    from teachwhy.resources import resource_scope

    # the user's overlay folders a command activates (config `resources`, --resources) end with it
    ctx.with_resource(resource_scope())
    if version:
        console.print(f"teachwhy {__version__}")
        raise typer.Exit()


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Folder to create the workspace in.")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing files.")] = False,
    organism: Annotated[
        bool,
        typer.Option(
            "--organism",
            help="Start the interventions from a model organism of misalignment (a research control).",
        ),
    ] = False,
    rl: Annotated[
        bool,
        typer.Option("--rl", help="RL after SFT, with and without augmented prompts (a diversity ablation)."),
    ] = False,
) -> None:
    """Create a workspace: an example constitution and a commented teachwhy.yaml that runs as is."""
    from teachwhy.workspace import init_workspace

    for path in init_workspace(directory, force=force, organism=organism, rl=rl):
        console.print(f"wrote {path}")
    console.print(f"next: cd {directory} && teachwhy models check")


@constitution_app.command("show")
def constitution_show(
    path: Annotated[
        Path | None, typer.Argument(help="A Markdown constitution (default: the config's).")
    ] = None,
    config: ConfigOption = DEFAULT_CONFIG,
    full: Annotated[bool, typer.Option("--full", help="Print each principle's whole text.")] = False,
    json_output: JsonOption = False,
) -> None:
    """Print the parsed principles: stable id, section, title and text."""
    from teachwhy.constitution import load_constitution

    if path is None:
        path = load_experiment(config).constitution_path if config.exists() else Path("constitution.md")
    constitution = load_constitution(path)
    if json_output:
        emit_json(
            {
                "path": str(path),
                "title": constitution.title,
                "sha256": constitution.sha256,
                "principles": [vars(p) for p in constitution.principles],
            }
        )
        return
    table = Table(title=f"{constitution.title} — {len(constitution.principles)} principles", show_lines=full)
    table.add_column("id", no_wrap=True, style="cyan")
    table.add_column("section", overflow="fold", max_width=24)
    table.add_column("title", overflow="fold", max_width=32)
    table.add_column("text", overflow="fold", ratio=1)
    for p in constitution.principles:
        text = p.text if full else (p.text[:100] + "…" if len(p.text) > 100 else p.text)
        table.add_row(p.id, p.section, p.title, text)
    console.print(table)
    console.print(f"sha256 {constitution.sha256}")


@models_app.command("check")
def models_check(
    config: ConfigOption = DEFAULT_CONFIG,
    generator: GeneratorOption = None,
    target: TargetOption = None,
    judge: JudgeOption = None,
    auditor: AuditorOption = None,
    role: Annotated[list[str] | None, typer.Option("--role", help="Check only these roles.")] = None,
) -> None:
    """Send one short prompt to each role's model; print latency and tokens/s, or what to fix."""
    from teachwhy.models.check import check_roles

    experiment = load_experiment(config, generator=generator, target=target, judge=judge, auditor=auditor)
    roles = tuple(role) if role else ROLES
    for name in roles:
        experiment.models.role(name)  # unknown role names are a user error
    table = Table(title="model roles")
    for column in ("role", "model", "latency", "tokens/s", "reply or error"):
        table.add_column(column, overflow="fold")
    results = check_roles(experiment, roles)
    for r in results:
        if r.ok:
            tps = f"{r.tokens_per_s:.1f}" if r.tokens_per_s is not None else "-"
            table.add_row(r.role, r.model, f"{r.latency_s:.2f}s", tps, r.reply or "")
        else:
            table.add_row(r.role, r.model, "-", "-", f"[red]{r.error}[/red]")
    console.print(table)
    failed = [r for r in results if not r.ok]
    if failed:
        for r in failed:
            print(f"error: {r.role}: {r.error}", file=sys.stderr)
        raise typer.Exit(1)


@config_app.command("check")
def config_check(config: ConfigOption = DEFAULT_CONFIG) -> None:
    """Validate the experiment file and its constitution without calling any model."""
    from teachwhy.constitution import load_constitution

    experiment = load_experiment(config)
    if not experiment.constitution_path.is_file():
        raise UserError(f"file not found: {experiment.constitution_path}", file=config, key="constitution")
    constitution = load_constitution(experiment.constitution_path)
    principles = len(constitution.principles)
    console.print(f"{config}: ok — {len(experiment.arms)} arms, constitution with {principles} principles")


def main() -> None:
    """Entry point: run the app, turning user errors into one line on stderr and exit code 2."""
    # our own progress display replaces the libraries' per-file bars; their deprecation chatter is not ours
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    try:
        app()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
