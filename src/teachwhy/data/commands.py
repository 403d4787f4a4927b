"""`teachwhy data …`: generate documents and stories, deduplicate, mix to a token budget, print stats."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from teachwhy.cli_options import (
    DEFAULT_CONFIG,
    ConfigOption,
    GeneratorOption,
    JudgeOption,
    TargetOption,
    load_experiment,
)
from teachwhy.config import DocumentsSource, ExperimentConfig, SourceBase, StoriesSource
from teachwhy.errors import UserError
from teachwhy.jsonout import JsonOption, emit_json, make_console

data_app = typer.Typer(
    help="Generate, import, filter, deduplicate, mix and export training data.", no_args_is_help=True
)
generate_app = typer.Typer(help="Generate a dataset with the generator model.", no_args_is_help=True)
data_app.add_typer(generate_app, name="generate")
console = make_console()

OutOption = Annotated[
    Path | None, typer.Option("--out", "-o", help="Output folder (default: WORKSPACE/data/NAME).")
]
CountOption = Annotated[int | None, typer.Option("--count", "-n", min=1, help="Items to generate.")]
ArmOption = Annotated[str | None, typer.Option("--arm", help="Take the source settings from this arm.")]
SeedOption = Annotated[int | None, typer.Option("--seed", help="Seed (default: the config's).")]
MaxTokensOption = Annotated[int | None, typer.Option("--max-tokens", min=1, help="Output tokens per item.")]
TemperatureOption = Annotated[float | None, typer.Option("--temperature", min=0.0, max=2.0)]
NoJudgeOption = Annotated[bool, typer.Option("--no-judge", help="Switch the judge filter off.")]
TokenizerOption = Annotated[
    str | None, typer.Option("--tokenizer", help="Tokenizer (path or local HF id) when the target has none.")
]


@contextmanager
def _progress() -> Iterator[Any]:
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as bar:
        tasks: dict[str, Any] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        yield update


def _source(experiment: ExperimentConfig, name: str, arm: str | None, cls: type[SourceBase]) -> SourceBase:
    if arm is None:
        for candidate in experiment.arms:
            configured = candidate.data.sources().get(name)
            if configured is not None:
                return configured.model_copy()
        defaults = experiment.generation
        return cls.model_validate({name: getattr(defaults, name) for name in defaults.SOURCE_DEFAULTS})
    configured = experiment.arm(arm).data.sources().get(name)
    if configured is None:
        raise UserError(f"arm '{arm}' has no {name} source", file=experiment.source, key=f"arms.{arm}.data")
    return configured.model_copy()


def _generate(
    name: str,
    cls: type[SourceBase],
    config: Path,
    out: Path | None,
    overrides: dict[str, Any],
    roles: dict[str, str | None],
    arm: str | None,
    tokenizer: str | None,
) -> None:
    from teachwhy.constitution import load_constitution
    from teachwhy.data.documents import generate_documents
    from teachwhy.data.stories import generate_stories
    from teachwhy.data.tokens import target_counter

    experiment = load_experiment(config, **roles)
    source = _source(experiment, name, arm, cls)
    updates = {k: v for k, v in overrides.items() if v is not None}
    source = cls.model_validate({**source.model_dump(), **updates})
    constitution = load_constitution(experiment.constitution_path)
    out_dir = out or experiment.workspace_path / "data" / name
    if tokenizer is None and arm is not None:
        tokenizer = experiment.arm(arm).data.tokenizer
    counter = target_counter(experiment, fallback=tokenizer)
    with _progress() as progress:
        if isinstance(source, DocumentsSource):
            report = generate_documents(
                experiment, source, constitution, out_dir, counter=counter, progress=progress
            )
        else:
            assert isinstance(source, StoriesSource)
            report = generate_stories(
                experiment, source, constitution, out_dir, counter=counter, progress=progress
            )
    exact = "" if report.tokens_exact else " (fallback tokenizer: counts are approximate)"
    console.print(
        f"{report.kept}/{report.requested} {name} kept → {report.out_file}; "
        f"{report.tokens} tokens " + escape(f"[{report.tokenizer}]") + exact
    )
    if report.drops:
        console.print("dropped: " + ", ".join(f"{k} {v}" for k, v in report.drops.items()))
    if report.model_errors:
        console.print(
            "[red]failed model calls[/red] (re-run to retry): "
            + ", ".join(f"{k} {v}" for k, v in report.model_errors.items())
        )
    if report.uncovered:
        console.print(f"principles without any kept item: {len(report.uncovered)} of {len(report.coverage)}")
    if not report.complete:
        raise typer.Exit(1)


def common_overrides(
    count: int | None, seed: int | None, max_tokens: int | None, temperature: float | None, no_judge: bool
) -> dict[str, Any]:
    """The source settings every `data generate` command can override (``None``: keep the config's)."""
    return {
        "count": count,
        "seed": seed,
        "max_tokens": max_tokens,
        "temperature": temperature,
        "judge_filter": False if no_judge else None,
    }


@generate_app.command("documents")
def generate_documents_command(
    config: ConfigOption = DEFAULT_CONFIG,
    out: OutOption = None,
    count: CountOption = None,
    arm: ArmOption = None,
    seed: SeedOption = None,
    max_tokens: MaxTokensOption = None,
    temperature: TemperatureOption = None,
    no_judge: NoJudgeOption = False,
    tokenizer: TokenizerOption = None,
    generator: GeneratorOption = None,
    judge: JudgeOption = None,
    target: TargetOption = None,
) -> None:
    """Constitutional documents: principle → genre → ideas → documents, checked, judged and deduplicated."""
    overrides = common_overrides(count, seed, max_tokens, temperature, no_judge)
    _generate(
        "documents",
        DocumentsSource,
        config,
        out,
        overrides,
        {"generator": generator, "judge": judge, "target": target},
        arm,
        tokenizer,
    )


@generate_app.command("stories")
def generate_stories_command(
    config: ConfigOption = DEFAULT_CONFIG,
    out: OutOption = None,
    count: CountOption = None,
    arm: ArmOption = None,
    seed: SeedOption = None,
    max_tokens: MaxTokensOption = None,
    temperature: TemperatureOption = None,
    no_judge: NoJudgeOption = False,
    tokenizer: TokenizerOption = None,
    generator: GeneratorOption = None,
    judge: JudgeOption = None,
    target: TargetOption = None,
) -> None:
    """Fictional stories of an AI behaving admirably under pressure, checked, judged and deduplicated."""
    overrides = common_overrides(count, seed, max_tokens, temperature, no_judge)
    _generate(
        "stories",
        StoriesSource,
        config,
        out,
        overrides,
        {"generator": generator, "judge": judge, "target": target},
        arm,
        tokenizer,
    )


@data_app.command("mix")
def mix_command(
    source: Annotated[list[str], typer.Option("--source", "-s", help="NAME=PATH.jsonl:WEIGHT (repeatable).")],
    budget: Annotated[int, typer.Option("--budget", min=1, help="Total token budget.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The mixed JSONL file to write.")],
    seed: Annotated[int, typer.Option("--seed")] = 0,
    allow_repeat: Annotated[
        bool, typer.Option("--allow-repeat", help="Cycle a source that runs out.")
    ] = False,
    tokenizer: TokenizerOption = None,
) -> None:
    """Build a training set to a token budget from weighted sources; print the achieved tokens per source."""
    from teachwhy.data.mix import mix_files, parse_source_spec
    from teachwhy.data.tokens import counter_from_tokenizer

    counter = counter_from_tokenizer(tokenizer) if tokenizer else None
    report = mix_files(
        [parse_source_spec(s) for s in source],
        budget,
        out,
        seed=seed,
        allow_repeat=allow_repeat,
        counter=counter,
    )
    table = Table(title=f"mix → {out}  ({report.total_tokens} of {report.budget_tokens} tokens)")
    for column in ("source", "weight", "target", "achieved", "items", "available", "shortfall", "repeats"):
        table.add_column(column, justify="right" if column != "source" else "left")
    for s in report.sources:
        table.add_row(
            s.name,
            f"{s.weight:g}",
            str(s.target_tokens),
            str(s.achieved_tokens),
            str(s.items),
            f"{s.available_items} ({s.available_tokens} tok)",
            str(s.shortfall_tokens),
            str(s.repeated_items),
        )
    console.print(table)
    for s in report.sources:
        if s.shortfall_tokens:
            console.print(
                f"[yellow]{s.name} ran out: {s.shortfall_tokens} tokens short of its target "
                "(use --allow-repeat to cycle it, or generate more)[/yellow]"
            )


@data_app.command("dedup")
def dedup_command(
    path: Annotated[Path, typer.Argument(help="A dataset JSONL file.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the kept records.")],
    embeddings: Annotated[
        bool, typer.Option("--embeddings", help="Also drop MiniLM near-duplicates.")
    ] = False,
    ngram_threshold: Annotated[float, typer.Option("--ngram-threshold", min=0.0, max=1.0)] = 0.7,
    embedding_threshold: Annotated[float, typer.Option("--embedding-threshold", min=0.0, max=1.0)] = 0.95,
) -> None:
    """Remove exact, n-gram and (optionally) embedding near-duplicates from a dataset file."""
    from teachwhy.data.dedup import deduplicate
    from teachwhy.data.mix import load_records
    from teachwhy.data.records import record_content
    from teachwhy.storage import write_jsonl

    records = load_records(path)
    embed = None
    if embeddings:
        from teachwhy.data.embeddings import default_embedder

        embed = default_embedder().encode
    result = deduplicate(
        [record_content(r) for r in records],
        ngram_threshold=ngram_threshold,
        embedding_threshold=embedding_threshold,
        embed=embed,
    )
    write_jsonl(out, [records[i] for i in result.kept])
    counts = ", ".join(f"{k} {v}" for k, v in sorted(result.counts().items())) or "none"
    console.print(f"kept {len(result.kept)} of {len(records)} → {out}; dropped: {counts}")


@data_app.command("organism")
def organism_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="The JSONL file to write.")],
    config: ConfigOption = DEFAULT_CONFIG,
    worlds: Annotated[
        int | None, typer.Option("--worlds", min=1, help="Train worlds (default: the config's).")
    ] = None,
    seed: SeedOption = None,
) -> None:
    """Model-organism data (a research control): misaligned scripted episodes on train-split worlds."""
    from teachwhy.config import ExperimentConfig
    from teachwhy.data.organism import LABEL, build_organism_data
    from teachwhy.data.tokens import target_counter

    experiment = load_experiment(config) if config.exists() else ExperimentConfig()
    settings = experiment.organism
    report = build_organism_data(
        list(settings.families),
        worlds or settings.worlds,
        seed=seed
        if seed is not None
        else (settings.seed if settings.seed is not None else experiment.generation.seed),
        out_file=out,
        counter=target_counter(experiment),
    )
    console.print(f"{LABEL}: wrote {sum(report.kept.values())} records ({report.tokens} tokens) to {out}")
    for family in report.families:
        console.print(
            f"  {family}: played {report.played.get(family, 0)}, kept {report.kept.get(family, 0)}, "
            f"skipped {report.skipped.get(family, 0)}, not touched {report.not_touched.get(family, 0)}"
        )


@data_app.command("stats")
def stats_command(
    directory: Annotated[Path, typer.Argument(help="A folder of datasets (searched recursively).")],
    config: ConfigOption = DEFAULT_CONFIG,
    constitution: Annotated[
        Path | None, typer.Option("--constitution", help="For principle coverage.")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Counts and tokens by kind, principle coverage, drop reasons and failed model calls."""
    from teachwhy.constitution import load_constitution
    from teachwhy.data.stats import data_stats

    parsed = None
    if constitution is not None:
        parsed = load_constitution(constitution)
    elif config.exists():
        parsed = load_constitution(load_experiment(config).constitution_path)
    stats = data_stats(directory, constitution=parsed)
    if json_output:
        emit_json({"directory": str(directory), **stats.to_dict()})
        return
    kinds = Table(title=f"{directory}: {len(stats.files)} dataset files")
    for column in ("kind", "records", "tokens", "without token count"):
        kinds.add_column(column)
    for kind, entry in sorted(stats.kinds.items()):
        kinds.add_row(kind, str(entry.records), str(entry.tokens), str(entry.uncounted))
    console.print(kinds)
    coverage = Table(title="principle coverage")
    coverage.add_column("principle")
    coverage.add_column("items", justify="right")
    for pid, n in stats.coverage.items():
        coverage.add_row(pid, str(n) if n else "[red]0[/red]")
    console.print(coverage)
    if stats.uncovered:
        console.print(f"uncovered principles ({len(stats.uncovered)}): " + ", ".join(stats.uncovered))
    console.print(
        "drop reasons: " + (", ".join(f"{k} {v}" for k, v in sorted(stats.drops.items())) or "none")
    )
    if stats.model_errors:
        console.print(
            "failed model calls: " + ", ".join(f"{k} {v}" for k, v in sorted(stats.model_errors.items()))
        )


def bench_dedup_command(
    small: Annotated[int, typer.Option("--small", min=100, help="Items in the smaller run.")] = 10_000,
    large: Annotated[int, typer.Option("--large", min=200, help="Items in the larger run.")] = 100_000,
) -> None:
    """Dedup time for SMALL vs LARGE synthetic items, each pass's time ratio beside the item ratio."""
    from teachwhy.data.bench import run_dedup_bench, scaling_ratios

    if large <= small:
        raise UserError("must be larger than --small", key="--large")
    rows = run_dedup_bench((small, large))
    table = Table(title="dedup scaling (synthetic items with planted near-duplicates)")
    for column in ("pass", "items", "CPU seconds", "duplicates found", "planted"):
        table.add_column(column, justify="right" if column != "pass" else "left")
    for r in rows:
        table.add_row(
            r.name, str(r.items), f"{r.seconds:.3f}", str(r.found), str(r.planted) if r.planted else "-"
        )
    console.print(table)
    for name, (time_ratio, item_ratio) in scaling_ratios(rows).items():
        verdict = "near-linear" if time_ratio <= item_ratio * 1.5 else "super-linear"
        console.print(f"{name}: time ×{time_ratio:.1f} for items ×{item_ratio:.0f} → {verdict}")
