"""`teachwhy data import` and `teachwhy data export`: datasets in from other tools, out to the Hub's format.

:func:`register` adds both commands to the ``data`` group of :mod:`teachwhy.data.commands`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from teachwhy.cli_options import DEFAULT_CONFIG, ConfigOption, load_experiment
from teachwhy.config import ExperimentConfig
from teachwhy.data.commands import TokenizerOption, console


def import_command(
    src: Annotated[Path, typer.Argument(help="A .jsonl/.json or .parquet file, or a save_to_disk folder.")],
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Output folder (default: WORKSPACE/data/imported, or ./imported)."),
    ] = None,
    format: Annotated[
        str, typer.Option("--format", help="auto, messages, sharegpt, prompt_response or text.")
    ] = "auto",
    kind: Annotated[str, typer.Option("--kind", help="The records' kind (their source name).")] = "imported",
    split: Annotated[
        str | None, typer.Option("--split", help="The split of a saved DatasetDict with several.")
    ] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Read at most this many rows.")] = None,
    dedup: Annotated[
        bool, typer.Option("--dedup", help="Drop exact and n-gram near-duplicate rows (first one kept).")
    ] = False,
    config: ConfigOption = DEFAULT_CONFIG,
    tokenizer: TokenizerOption = None,
) -> None:
    """Convert your own chat or text dataset into records every transform, mix and training run accepts."""
    from teachwhy.data.import_rows import DROP_REASONS, open_source
    from teachwhy.data.importing import import_dataset
    from teachwhy.data.output import DedupSettings
    from teachwhy.data.tokens import counter_from_tokenizer, target_counter

    if config.exists():
        experiment = load_experiment(config)
        out_dir = out or experiment.workspace_path / "data" / "imported"
        counter = target_counter(experiment, fallback=tokenizer)
    else:
        out_dir = out or Path("imported")
        counter = counter_from_tokenizer(tokenizer) if tokenizer else target_counter(ExperimentConfig())
    source = open_source(src, split=split)
    report = import_dataset(
        source,
        out_dir,
        kind=kind,
        format=format,
        limit=limit,
        counter=counter,
        dedup=DedupSettings() if dedup else None,
    )
    exact = "" if report.tokens_exact else " (fallback tokenizer: counts are approximate)"
    formats = ", ".join(f"{k} {v}" for k, v in report.stages["formats"].items()) or "none"
    console.print(
        f"{report.kept}/{report.requested} rows imported ({formats}) → {report.out_file}; "
        f"{report.tokens} tokens [{report.tokenizer}]{exact}",
        markup=False,
    )
    if report.drops:
        console.print(
            f"dropped {sum(report.drops.values())} rows (each with its detail in {out_dir}/drops.jsonl):",
            markup=False,
        )
        for reason, n in report.drops.items():
            console.print(
                f"  {reason} {n}: {DROP_REASONS.get(reason, 'a duplicate of an earlier row')}", markup=False
            )
    if report.kept == 0:
        console.print(f"no row of {src} could be imported", style="red", markup=False)
        raise typer.Exit(1)


def export_command(
    source: Annotated[Path, typer.Argument(help="A dataset JSONL file or a folder of them (searched).")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="The folder to write (default: SOURCE-hf beside it).")
    ] = None,
    license: Annotated[
        str | None,
        typer.Option("--license", help="Licence id for the card, e.g. cc-by-4.0 (default: unknown)."),
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="The dataset's name on its card.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing output folder.")] = False,
    config: ConfigOption = DEFAULT_CONFIG,
    constitution: Annotated[
        Path | None, typer.Option("--constitution", help="For principle titles (default: the config's).")
    ] = None,
) -> None:
    """Write a dataset folder that datasets.load_from_disk loads (and push_to_hub pushes), with a card."""
    from datasets import disable_progress_bars

    from teachwhy.constitution import load_constitution
    from teachwhy.data.export import CARD, export_dataset

    disable_progress_bars()

    parsed = None
    if constitution is not None:
        parsed = load_constitution(constitution)
    elif config.exists():
        parsed = load_constitution(load_experiment(config).constitution_path)
    resolved = source.resolve()
    out_dir = out or resolved.with_name(resolved.stem + "-hf")
    report = export_dataset(source, out_dir, license=license, name=name, constitution=parsed, force=force)
    console.print(f"exported {report.records} records to {out_dir} (licence {report.license})", markup=False)
    table = Table()
    for column in ("kind", "records", "tokens"):
        table.add_column(column, justify="left" if column == "kind" else "right")
    for kind, entry in report.kinds.items():
        table.add_row(kind, str(entry["records"]), str(entry["tokens"]))
    console.print(table)
    console.print(f"card: {out_dir / CARD}; load with datasets.load_from_disk('{out_dir}')", markup=False)


def register(data_app: typer.Typer) -> None:
    """Add ``import`` and ``export`` to the ``data`` group."""
    data_app.command("import")(import_command)
    data_app.command("export")(export_command)
