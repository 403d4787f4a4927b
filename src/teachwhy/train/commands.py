"""CLI: ``teachwhy train`` and ``teachwhy bench train``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from teachwhy.cli_options import DEFAULT_CONFIG, ConfigOption, TargetOption, load_experiment
from teachwhy.errors import UserError
from teachwhy.jsonout import make_console

console = make_console()


def train_command(
    config: ConfigOption = DEFAULT_CONFIG,
    data: Annotated[
        list[Path] | None,
        typer.Option(
            "--data",
            help="A JSONL training file (repeatable); records with text are documents, "
            "records with messages are chat.",
        ),
    ] = None,
    arm: Annotated[
        str | None, typer.Option("--arm", help="Use this arm's train block (default: the top-level one).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Output folder (default: <workspace>/train/<arm>).")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run in --out from its last checkpoint.")
    ] = False,
    target: TargetOption = None,
) -> None:
    """Fine-tune the target model (LoRA or full) on training records; write merged checkpoints and a log."""
    from transformers.utils import logging as hf_logging

    from teachwhy.train.run import resolve_target_path, train_model

    experiment = load_experiment(config, target=target)
    train_config = experiment.train_for(experiment.arm(arm)) if arm else experiment.train
    if not data:
        raise UserError("pass the training data with --data FILE.jsonl (repeatable)", key="--data")
    out_dir = out if out is not None else experiment.workspace_path / "train" / (arm or "default")
    model = resolve_target_path(experiment.models.target)
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    result = train_model(model=model, data=data, out_dir=out_dir, config=train_config, resume=resume)
    if int(os.environ.get("RANK", "0")) != 0:  # under accelerate launch, rank 0 alone reports
        return
    table = Table(title=f"checkpoints — {result.steps} steps")
    for column in ("step", "stage", "tokens seen", "model folder"):
        table.add_column(column, overflow="fold")
    for checkpoint in result.checkpoints:
        table.add_row(
            str(checkpoint.step), checkpoint.stage, f"{checkpoint.tokens_seen:,}", str(checkpoint.path)
        )
    console.print(table)
    sources = ", ".join(f"{k} {v:,}" for k, v in result.tokens_by_source.items())
    console.print(f"tokens by source: {sources}")
    if result.skipped_stages:
        console.print(
            f"[yellow]skipped stages with no data of their kind:[/yellow] {', '.join(result.skipped_stages)}"
        )
    if result.too_long:
        console.print(
            f"[yellow]{len(result.too_long)} conversations longer than max_length were left out[/yellow]"
        )
    console.print(f"log: {result.log_path}")


def bench_train_command(
    model: Annotated[
        str, typer.Option("--model", help="'tiny' (random, built on the spot) or 'embedded'.")
    ] = "tiny",
    steps: Annotated[int, typer.Option("--steps", min=1, help="Measured steps per side.")] = 16,
    docs: Annotated[int, typer.Option("--docs", min=8, help="Synthetic documents.")] = 400,
    max_length: Annotated[int, typer.Option("--max-length", min=32, help="Row length.")] = 512,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Rows per step.")] = 4,
) -> None:
    """Training tokens/s, packed vs padded to max length, side by side in one run (target ratio >= 2x)."""
    from transformers.utils import logging as hf_logging

    from teachwhy.train.bench import run_bench

    if model not in ("tiny", "embedded"):
        raise UserError("must be 'tiny' or 'embedded'", key="--model")
    path = None
    if model == "embedded":
        from teachwhy.models import materialise_embedded

        path = materialise_embedded()
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    with console.status("training packed, then padded to max length…"):
        packed, padded = run_bench(
            model=path, steps=steps, docs=docs, max_length=max_length, batch_size=batch_size
        )
    table = Table(
        title=f"training throughput ({model} model, max_length {max_length}, {batch_size} rows/step)"
    )
    for column in ("mode", "steps", "real tokens", "seconds", "tokens/s"):
        table.add_column(column, justify="right")
    for run in (packed, padded):
        table.add_row(
            run.name, str(run.steps), f"{run.tokens:,}", f"{run.seconds:.2f}", f"{run.tokens_per_s:,.0f}"
        )
    console.print(table)
    ratio = packed.tokens_per_s / padded.tokens_per_s if padded.tokens_per_s else float("inf")
    verdict = "[green]meets[/green]" if ratio >= 2 else "[red]below[/red]"
    console.print(f"packed / padded tokens/s: {ratio:.2f}x ({verdict} the 2x target)")
