"""`teachwhy run` and `teachwhy status`: execute or inspect the experiment's stage graph; `teachwhy organism
export`: bundle a built organism."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from teachwhy.cli_options import (
    DEFAULT_CONFIG,
    AuditorOption,
    ConfigOption,
    GeneratorOption,
    JudgeOption,
    TargetOption,
    load_experiment,
)
from teachwhy.config import ExperimentConfig
from teachwhy.experiment.pipeline import SUMMARY_FILE, ExperimentPipeline, ProgressHook
from teachwhy.experiment.stages import StageRecord, StageRunner
from teachwhy.experiment.summary import ExperimentSummary
from teachwhy.experiment.worker import run_worker
from teachwhy.jsonout import JsonOption, emit_json, make_console

console = make_console()

STATE_STYLE = {
    "done": "green",
    "running": "yellow",
    "failed": "red",
    "stale": "magenta",
    "pending": "white",
    "blocked": "dim",
}


def _on_event(event: str, record: StageRecord) -> None:
    if event == "busy":
        console.print(f"[yellow]⏸ {record.stage_id}[/yellow] [dim]running in another process; skipped[/dim]")
    elif event == "start":
        console.print(f"[bold]▶ {record.stage_id}[/bold] [dim]{record.detail}[/dim]")
    elif event == "done":
        console.print(f"[green]✓ {record.stage_id}[/green] [dim]{record.seconds or 0:.1f}s[/dim]")
    elif event == "cached":
        console.print(f"[dim]✓ {record.stage_id} (finished earlier)[/dim]")
    elif event == "failed":
        console.print(f"[red]✗ {record.stage_id}: {record.error}[/red]")


def progress_bars() -> Callable[[str], AbstractContextManager[ProgressHook | None]]:
    """A progress-bar factory for generation stages (one bar per sub-stage, e.g. ideas → documents)."""

    @contextmanager
    def bars(label: str) -> Iterator[ProgressHook | None]:
        with Progress(
            TextColumn("  {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as bar:
            tasks: dict[str, int] = {}

            def update(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = bar.add_task(f"{label} · {stage}", total=total)
                bar.update(tasks[stage], completed=done, total=total)  # type: ignore[arg-type]

            yield update

    return bars


def run_experiment(
    config: ExperimentConfig, *, arms: Sequence[str] | None = None, poll_seconds: float = 10.0
) -> ExperimentSummary:
    """Run every unfinished stage of ``arms`` (all arms by default) that no other worker holds, and write
    ``summary.json`` from everything finished in the workspace; returns the summary."""
    from teachwhy.models.serve import require_serving_engine

    require_serving_engine(config)
    started = time.perf_counter()
    # Inspect's own progress display for the evaluation stages: live panels in a terminal, lines otherwise
    display = "rich" if console.is_terminal else "plain"
    outcome = run_worker(
        config,
        arms=arms,
        on_event=_on_event,
        progress=progress_bars(),
        eval_display=display,
        poll_seconds=poll_seconds,
    )
    summary_path = config.workspace_path / SUMMARY_FILE
    seconds = time.perf_counter() - started
    if outcome.complete:
        console.print(
            f"[bold green]experiment finished[/bold green] in {seconds:.0f}s; summary: {summary_path}"
        )
    else:
        if outcome.elsewhere:
            console.print(f"[yellow]running in other workers:[/yellow] {', '.join(outcome.elsewhere)}")
        console.print(
            f"[bold]this worker is done[/bold] in {seconds:.0f}s; {len(outcome.unfinished)} stages of the "
            f"experiment have not finished yet; summary of what has: {summary_path}"
        )
    return outcome.summary


def run_command(
    config: ConfigOption = DEFAULT_CONFIG,
    arm: Annotated[
        list[str] | None,
        typer.Option(
            "--arm",
            help="Run only this arm (repeatable), with the stages it shares; other workers may run the rest.",
        ),
    ] = None,
    poll: Annotated[
        float,
        typer.Option(
            "--poll", min=0.1, help="Seconds between checks while waiting for a stage another worker runs."
        ),
    ] = 10.0,
    generator: GeneratorOption = None,
    target: TargetOption = None,
    judge: JudgeOption = None,
    auditor: AuditorOption = None,
) -> None:
    """Run the experiment: generate → mix → train → eval at checkpoints → OOD → summary. Resumable.

    Several `teachwhy run` processes may share one workspace (e.g. a Slurm array, one arm each): each runs the
    stages no other process holds.
    """
    from teachwhy.experiment.pipeline import StageIncomplete

    experiment = load_experiment(config, generator=generator, target=target, judge=judge, auditor=auditor)
    try:
        run_experiment(experiment, arms=arm, poll_seconds=poll)
    except StageIncomplete as e:  # the cause in one line; the stage is not cached and runs again next time
        console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(1) from None
    console.print("next: teachwhy report")


def status_command(
    config: ConfigOption = DEFAULT_CONFIG,
    generator: GeneratorOption = None,
    target: TargetOption = None,
    judge: JudgeOption = None,
    auditor: AuditorOption = None,
    json_output: JsonOption = False,
) -> None:
    """Show each stage of the experiment: done, stale, running, failed, pending or blocked."""
    experiment = load_experiment(config, generator=generator, target=target, judge=judge, auditor=auditor)
    runner = StageRunner(experiment.workspace_path, dry_run=True)
    ExperimentPipeline(experiment, runner).run()
    if json_output:
        stages = list({r.stage_id: r for r in runner.records}.values())  # step 0 appears once per arm
        states = Counter(r.state for r in stages)
        emit_json(
            {
                "name": experiment.name,
                "workspace": str(experiment.workspace_path),
                "stages": [vars(r) for r in stages],
                "counts": dict(sorted(states.items())),
            }
        )
        if states.get("failed"):
            raise typer.Exit(1)
        return
    table = Table(title=f"{experiment.name}: stages")
    for column in ("stage", "state", "key", "time", "note"):
        table.add_column(column, overflow="fold")
    seen: set[str] = set()
    for r in runner.records:
        if r.stage_id in seen:  # the shared step-0 evaluation appears once per arm
            continue
        seen.add(r.stage_id)
        style = STATE_STYLE[r.state]
        seconds = f"{r.seconds:.0f}s" if r.seconds is not None else ""
        table.add_row(r.stage_id, f"[{style}]{r.state}[/{style}]", r.key or "", seconds, r.error or r.detail)
    console.print(table)
    counts: dict[str, int] = {}
    for r in runner.records:
        if r.stage_id in seen:
            counts[r.state] = counts.get(r.state, 0) + 1
            seen.discard(r.stage_id)
    console.print(", ".join(f"{n} {state}" for state, n in sorted(counts.items())))
    if counts.get("failed"):
        raise typer.Exit(1)


def export_organism_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="The folder to write the bundle into, as <key>/.")],
    config: ConfigOption = DEFAULT_CONFIG,
    target: TargetOption = None,
) -> None:
    """Bundle the organism built in this workspace: its LoRA adapter, training log and manifest.

    A run whose organism stage has the bundle's key rebuilds the organism from it in seconds instead of
    training it. The package ships the bundled model's organism this way (teachwhy/experiment/organisms/).
    """
    from teachwhy.experiment.organism_bundle import export_bundle

    experiment = load_experiment(config, target=target)
    folder = export_bundle(experiment, out)
    console.print(f"exported the organism to {folder}")
