"""`teachwhy data generate advice|honeypot-demos|rewrite|augment`: the chat-data generators.

:func:`register` adds the four commands to the ``data generate`` group of :mod:`teachwhy.data.commands`.
Every command takes its settings from the experiment file (the first arm with that source, or ``--arm``),
with the usual overrides; ``rewrite`` and ``augment`` read ``--input`` (default:
``WORKSPACE/data/SOURCE/SOURCE.jsonl``, where ``SOURCE`` is the source they are configured to transform).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from teachwhy.cli_options import DEFAULT_CONFIG, ConfigOption, GeneratorOption, JudgeOption, TargetOption
from teachwhy.config import AdviceSource, AugmentSource, HoneypotDemosSource, RewriteSource, SourceBase
from teachwhy.data.commands import (
    ArmOption,
    CountOption,
    MaxTokensOption,
    NoJudgeOption,
    OutOption,
    SeedOption,
    TemperatureOption,
    TokenizerOption,
    _progress,
    _source,
    common_overrides,
    console,
)
from teachwhy.data.output import GenerationReport
from teachwhy.errors import UserError

InputOption = Annotated[
    Path | None,
    typer.Option(
        "--input", "-i", help="Chat dataset to transform (default: WORKSPACE/data/SOURCE/SOURCE.jsonl)."
    ),
]


def _run(
    name: str,
    cls: type[SourceBase],
    config: Path,
    out: Path | None,
    overrides: dict[str, Any],
    roles: dict[str, str | None],
    arm: str | None,
    tokenizer: str | None,
    input_path: Path | None = None,
) -> None:
    from teachwhy.cli_options import load_experiment
    from teachwhy.constitution import load_constitution
    from teachwhy.data.tokens import target_counter

    experiment = load_experiment(config, **roles)
    base = _source(experiment, name, arm, cls)
    source = cls.model_validate(
        {**base.model_dump(), **{k: v for k, v in overrides.items() if v is not None}}
    )
    if (
        isinstance(source, HoneypotDemosSource)
        and source.played_by == "start"
        and arm is not None
        and experiment.arm(arm).start_from == "organism"
        and roles.get("target") is None
    ):
        raise UserError(
            "played_by: start plays the demonstrations with the organism, which only `teachwhy run` "
            "builds; run that, or pass --target embedded/<organism folder>",
            file=experiment.source,
            key=f"arms.{arm}.data.honeypot_demos.played_by",
        )
    constitution = load_constitution(experiment.constitution_path)
    out_dir = out or experiment.workspace_path / "data" / name
    if tokenizer is None and arm is not None:
        tokenizer = experiment.arm(arm).data.tokenizer
    counter = target_counter(experiment, fallback=tokenizer)
    if isinstance(source, RewriteSource | AugmentSource) and input_path is None:
        input_path = experiment.workspace_path / "data" / source.source / f"{source.source}.jsonl"
    report: GenerationReport
    with _progress() as progress:
        if isinstance(source, AdviceSource):
            from teachwhy.data.advice import generate_advice

            report = generate_advice(
                experiment, source, constitution, out_dir, counter=counter, progress=progress
            )
        elif isinstance(source, HoneypotDemosSource):
            from teachwhy.data.honeypot_demos import generate_honeypot_demos

            report = generate_honeypot_demos(
                experiment, source, constitution, out_dir, counter=counter, progress=progress
            )
        elif isinstance(source, RewriteSource):
            from teachwhy.data.rewrite import generate_rewrite

            report = generate_rewrite(
                experiment,
                source,
                constitution,
                out_dir,
                input_path=input_path,
                counter=counter,
                progress=progress,
            )
        else:
            from teachwhy.data.augment import generate_augment

            assert isinstance(source, AugmentSource)
            report = generate_augment(
                experiment,
                source,
                constitution,
                out_dir,
                input_path=input_path,
                counter=counter,
                progress=progress,
            )
    _print_report(name, report)


def _print_report(name: str, report: GenerationReport) -> None:
    exact = "" if report.tokens_exact else " (fallback tokenizer: counts are approximate)"
    console.print(
        f"{report.kept}/{report.requested} {name} kept → {report.out_file}; "
        f"{report.tokens} tokens [{report.tokenizer}]{exact}"
    )
    if report.drops:
        console.print("dropped: " + ", ".join(f"{k} {v}" for k, v in report.drops.items()))
    for stage, counts in report.stages.items():
        if stage.startswith("acceptance:"):
            rate = f"{counts['kept'] / counts['attempts']:.0%}" if counts["attempts"] else "-"
            console.print(
                f"{stage}: {counts['kept']}/{counts['attempts']} accepted ({rate}), "
                f"{counts['misaligned']} misaligned, {counts['unscored']} unscored"
            )
    if report.model_errors:
        console.print(
            "[red]failed model calls[/red] (re-run to retry): "
            + ", ".join(f"{k} {v}" for k, v in report.model_errors.items())
        )
    if not report.complete:
        raise typer.Exit(1)


def advice_command(
    config: ConfigOption = DEFAULT_CONFIG,
    out: OutOption = None,
    count: CountOption = None,
    arm: ArmOption = None,
    seed: SeedOption = None,
    max_tokens: MaxTokensOption = None,
    temperature: TemperatureOption = None,
    no_judge: NoJudgeOption = False,
    reasoning: Annotated[
        bool | None, typer.Option("--reasoning/--no-reasoning", help="Visible reasoning.")
    ] = None,
    revise: Annotated[bool | None, typer.Option("--revise/--no-revise", help="Critique and revise.")] = None,
    tokenizer: TokenizerOption = None,
    generator: GeneratorOption = None,
    judge: JudgeOption = None,
    target: TargetOption = None,
) -> None:
    """Difficult advice: a user's ethical dilemma and a thoughtful, principle-grounded answer."""
    overrides = {
        **common_overrides(count, seed, max_tokens, temperature, no_judge),
        "reasoning": reasoning,
        "revise": revise,
    }
    _run(
        "advice",
        AdviceSource,
        config,
        out,
        overrides,
        {"generator": generator, "judge": judge, "target": target},
        arm,
        tokenizer,
    )


def honeypot_demos_command(
    config: ConfigOption = DEFAULT_CONFIG,
    out: OutOption = None,
    count: Annotated[int | None, typer.Option("--count", "-n", min=1, help="Train worlds to play.")] = None,
    attempts: Annotated[int | None, typer.Option("--attempts", min=1, help="Episodes per world.")] = None,
    max_turns: Annotated[
        int | None, typer.Option("--max-turns", min=1, help="Agent replies per episode.")
    ] = None,
    arm: ArmOption = None,
    seed: SeedOption = None,
    max_tokens: MaxTokensOption = None,
    temperature: TemperatureOption = None,
    no_judge: NoJudgeOption = False,
    tokenizer: TokenizerOption = None,
    judge: JudgeOption = None,
    target: TargetOption = None,
) -> None:
    """Honeypot demonstrations: play synthetic train worlds, keep only episodes judged not misaligned."""
    overrides = {
        **common_overrides(count, seed, max_tokens, temperature, no_judge),
        "attempts_per_prompt": attempts,
        "max_turns": max_turns,
    }
    _run(
        "honeypot_demos",
        HoneypotDemosSource,
        config,
        out,
        overrides,
        {"judge": judge, "target": target},
        arm,
        tokenizer,
    )


def rewrite_command(
    config: ConfigOption = DEFAULT_CONFIG,
    input_path: InputOption = None,
    out: OutOption = None,
    count: Annotated[int | None, typer.Option("--count", "-n", min=1, help="Records to rewrite.")] = None,
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
    """Deliberation rewrite: assistant turns reason about values before acting; the action must not change."""
    _run(
        "rewrite",
        RewriteSource,
        config,
        out,
        common_overrides(count, seed, max_tokens, temperature, no_judge),
        {"generator": generator, "judge": judge, "target": target},
        arm,
        tokenizer,
        input_path,
    )


def augment_command(
    config: ConfigOption = DEFAULT_CONFIG,
    input_path: InputOption = None,
    out: OutOption = None,
    tool_rate: Annotated[float | None, typer.Option("--tool-rate", min=0.0, max=1.0)] = None,
    system_prompt_rate: Annotated[
        float | None, typer.Option("--system-prompt-rate", min=0.0, max=1.0)
    ] = None,
    arm: ArmOption = None,
    seed: SeedOption = None,
    tokenizer: TokenizerOption = None,
    target: TargetOption = None,
) -> None:
    """Augmentation: add unused tool definitions and operator system prompts to a chat dataset."""
    overrides = {"seed": seed, "tool_rate": tool_rate, "system_prompt_rate": system_prompt_rate}
    _run("augment", AugmentSource, config, out, overrides, {"target": target}, arm, tokenizer, input_path)


def register(generate_app: typer.Typer) -> None:
    """Add the four commands to the ``data generate`` group."""
    generate_app.command("advice")(advice_command)
    generate_app.command("honeypot-demos")(honeypot_demos_command)
    generate_app.command("rewrite")(rewrite_command)
    generate_app.command("augment")(augment_command)
