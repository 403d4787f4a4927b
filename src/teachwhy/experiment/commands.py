"""`teachwhy run` and `teachwhy status`: execute or inspect the experiment's stage graph."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

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
from teachwhy.experiment.pipeline import ExperimentPipeline, ProgressHook
from teachwhy.experiment.stages import StageRecord, StageRunner
from teachwhy.experiment.summary import ExperimentSummary
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
    if event == "start":
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


def run_experiment(config: ExperimentConfig) -> ExperimentSummary:
    """Run every stage that has not finished and write ``summary.json``; returns the summary."""
    runner = StageRunner(config.workspace_path, on_event=_on_event)
    started = time.perf_counter()
    # Inspect's own progress display for the evaluation stages: live panels in a terminal, lines otherwise
    display = "rich" if console.is_terminal else "plain"
    summary = ExperimentPipeline(config, runner, progress=progress_bars(), eval_display=display).run()
    assert summary is not None  # a real run either finishes or raises
    console.print(
        f"[bold green]experiment finished[/bold green] in {time.perf_counter() - started:.0f}s; "
        f"summary: {config.workspace_path / 'summary.json'}"
    )
    return summary


def run_command(
    config: ConfigOption = DEFAULT_CONFIG,
    generator: GeneratorOption = None,
    target: TargetOption = None,
    judge: JudgeOption = None,
    auditor: AuditorOption = None,
) -> None:
    """Run the experiment: generate → mix → train → eval at checkpoints → OOD → summary. Resumable."""
    from teachwhy.experiment.pipeline import StageIncomplete

    experiment = load_experiment(config, generator=generator, target=target, judge=judge, auditor=auditor)
    try:
        run_experiment(experiment)
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
