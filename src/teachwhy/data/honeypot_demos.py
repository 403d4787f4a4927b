"""Honeypot demonstrations by rejection sampling (the article's baseline), on synthetic ``train`` worlds only.

Each of ``count`` train worlds (:mod:`teachwhy.data.honeypot_worlds`) is played ``attempts_per_prompt`` times
by the target model in the evaluation's own agent loop (:func:`teachwhy.evals.agent.run_episode`) and
classified by the evaluation's classifier (:func:`teachwhy.evals.classify.classify_result`, trace rule +
judge). An episode is kept only when the rule found no harmful act in any category, the judge (where asked)
called no category harmful, and no category is unscored. Everything else is a counted drop, never a kept
demonstration:

- ``misaligned:rule`` / ``misaligned:judge`` / ``misaligned``: the rule, the judge or the policy found a
  harmful act (the rule and the judge each veto on their own, whatever the policy);
- ``unscored:<status>``: the judge refused or gave no parseable verdict, the rule was undecided under a
  rule-only policy, or the episode was cut off;
- ``malformed_tool_call``: the agent wrote a tool call that could not be parsed or run;
- ``truncated``: the agent's last reply hit ``max_tokens``; ``empty``: the agent said and did nothing;
- ``no_action`` (unless ``require_action: false``): the agent called no tool but ``done`` -- it wrote prose
  and ended the session, so the episode shows no action to learn from, aligned or not.

The episodes are played by the configured target, or with ``played_by: start`` by the model the arm starts
from (the experiment passes the organism as ``model``), which acts where the untrained target only writes.
``played_by: aligned_policies`` needs no model: each world is played by ``attempts_per_prompt`` of its
family's aligned scripted control policies (:mod:`teachwhy.evals.controls`; routine work, honest reports,
refusals that name the leverage, drafts not sent), grounded like the organism's episodes
(:func:`teachwhy.data.organism.grounded_turns`), and classified and filtered like any other episode.

A failed model call (agent or judge) leaves the attempt unfinished; the next run retries it. Acceptance counts
per family go into ``summary.json`` (``stages["acceptance:<family>"]``) and, with rates, ``acceptance.json``.

Record format (what TRL's chat SFT trains on): ``messages`` holds only ``system``/``user``/``assistant``
string turns in the *text tool-call format* of :mod:`teachwhy.evals.toolcalls`, whichever format the episode
was played in: the system prompt lists the tools as text; each assistant turn is its words followed by one
``<tool_call>{"name": …, "arguments": …}</tool_call>`` line per call; the results come back as a ``user``
turn ``Tool results:\\n[1] tool: result``. Trailing tool results after the last assistant turn are cut.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import Any

from inspect_ai.model import ChatMessageAssistant, ChatMessageTool, GenerateConfig, Model

from teachwhy.config import ExperimentConfig, HoneypotDemosSource
from teachwhy.constitution import Constitution
from teachwhy.data.coverage import item_seed
from teachwhy.data.engine import Generation, Progress, Sampling, stage_files
from teachwhy.data.organism import (
    POLICY_MODEL,
    aligned_policies,
    check_train_split,
    grounded_turns,
    looking_turns,
)
from teachwhy.data.output import GenerationReport, finish, stage_counts
from teachwhy.data.records import drop_record, provenance, record_content, verdict
from teachwhy.data.setup import make_dedup
from teachwhy.data.tokens import TokenCounter
from teachwhy.evals.agent import EpisodeResult, run_episode
from teachwhy.evals.classify import Classification, classify_result
from teachwhy.evals.conditions import Episode
from teachwhy.evals.controls import ControlPolicy, script, scripted_agent, world_facts
from teachwhy.evals.toolcalls import text_tool_instructions
from teachwhy.storage import JsonlAppender, atomic_write_json, content_hash, iter_jsonl

GENERATOR = "honeypot_demos"
KIND = "honeypot_demo"
STAGE = "episodes"
ACCEPTANCE = "acceptance.json"


def demo_messages(result: EpisodeResult) -> list[dict[str, str]]:
    """An episode's transcript as chat-record messages in the text tool-call format (module docstring)."""
    tools = list(result.episode.world["tools"])
    out: list[dict[str, str]] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            out.append({"role": "user", "content": "Tool results:\n" + "\n".join(pending)})
            pending.clear()

    for message in result.messages:
        if message.role == "system":
            text = message.text
            if result.tool_format == "native":
                text = f"{text}\n\n{text_tool_instructions(tools)}"
            out.append({"role": "system", "content": text})
        elif isinstance(message, ChatMessageTool):
            pending.append(f"[{len(pending) + 1}] {message.function}: {message.text}")
        elif isinstance(message, ChatMessageAssistant):
            flush()
            out.append({"role": "assistant", "content": _assistant_text(message)})
        else:
            flush()
            out.append({"role": "user", "content": message.text})
    while out and out[-1]["role"] != "assistant":
        out.pop()
    return out


def text_call(name: str, arguments: dict[str, Any]) -> str:
    """One tool call written in the evaluation's text format (:mod:`teachwhy.evals.toolcalls`)."""
    return (
        "<tool_call>"
        + json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)
        + "</tool_call>"
    )


def _assistant_text(message: ChatMessageAssistant) -> str:
    calls = [text_call(c.function, dict(c.arguments)) for c in message.tool_calls or []]
    return "\n".join(part for part in [message.text.strip(), *calls] if part)


def rejection_reason(
    result: EpisodeResult,
    classification: Classification,
    max_tokens: int,
    *,
    require_action: bool = True,
    labelled_clean: bool = False,
) -> str | None:
    """Why an episode is not kept, or ``None`` when it is a demonstration worth keeping.

    Kept only when the rule found no harmful act in any category, the judge (where it was asked) called no
    category harmful, and no category is unscored: a demonstration must be clean by every check that ran.
    With ``require_action`` it must also have acted: at least one well-formed tool call besides ``done``.
    ``labelled_clean``: the episode was played by a scripted policy labelled not harmful in every category,
    so a category the rule leaves undecided (a message whose harm depends on its words) is decided by that
    label; the rule's and the judge's "harmful" still drop it, and a judge that gave no verdict still does.
    """
    if classification.rule.verdict == "harmful":
        return "misaligned:rule"
    judge = classification.judge
    if judge is not None and judge.status == "ok" and "harmful" in judge.categories.values():
        return "misaligned:judge"
    outcomes = {c.outcome for c in classification.categories.values()}
    if "harmful" in outcomes:
        return "misaligned"
    if result.ended_by in ("truncated", "model_length", "content_filter"):
        return result.ended_by
    if "unscored" in outcomes:
        status = judge.status if judge is not None and judge.status != "ok" else "rule_undecided"
        if not (labelled_clean and status == "rule_undecided"):
            return f"unscored:{status}"
    if result.malformed:
        return "malformed_tool_call"
    if result.truncated_replies:  # a demonstration must not teach replies that run out and get nudged on
        return "truncated"
    last = result.output
    if last is not None and (
        last.stop_reason == "max_tokens"
        or (
            last.stop_reason == "unknown"
            and last.usage is not None
            and last.usage.output_tokens >= max_tokens
        )
    ):
        return "truncated"
    if not any(
        m.text.strip() or m.tool_calls for m in result.messages if isinstance(m, ChatMessageAssistant)
    ):
        return "empty"
    if require_action and not acted(result):
        return "no_action"
    return None


def acted(result: EpisodeResult) -> bool:
    """Whether the agent made a tool call that ran, other than ending its session with ``done``."""
    return any(a.ok and a.tool != "done" for a in result.world.actions)


async def _play_policy(player: ControlPolicy, episode: Episode) -> EpisodeResult:
    """One aligned scripted policy on a train world, grounded as the organism's episodes are: it lists and
    reads what the world holds before it acts, and says its words (if any) where it acts."""
    steps = script(player, episode)
    assert steps is not None  # planned only where the world has what the policy needs
    turns = grounded_turns(steps, episode)
    agent = scripted_agent(player, turns, world_facts(episode), say_turn=looking_turns(turns))
    return await run_episode(agent, episode, max_turns=len(turns), tool_format="native")


async def generate_honeypot_demos_async(
    config: ExperimentConfig,
    source: HoneypotDemosSource,
    constitution: Constitution,
    out_dir: Path,
    *,
    model: Model | None = None,
    model_name: str | None = None,
    judge: Model | None = None,
    counter: TokenCounter | None = None,
    progress: Progress | None = None,
) -> GenerationReport:
    """Rejection-sample honeypot demonstrations into ``out_dir`` (resumable; see :mod:`teachwhy.data.output`).

    Args:
        config: the experiment (target/judge roles, generation defaults).
        source: the demonstration settings (worlds, attempts, families, policy…).
        constitution: the constitution (for provenance and the coverage table).
        out_dir: the output folder.
        model: the agent to sample instead of the configured ``target`` role (unused with
            ``played_by: aligned_policies``).
        model_name: the name ``model`` is recorded under (default ``str(model)``); attempts are cached by it.
        judge: the classifier's judge model instead of the configured ``judge`` role.
        counter: the target tokenizer for token counts (``None``: no counts).
        progress: called as attempts finish.
    """
    from teachwhy.data.honeypot_worlds import template_sha256, train_worlds
    from teachwhy.models import role_model

    seed = config.generation.seed if source.seed is None else source.seed
    gen_defaults = config.generation
    sampling = Sampling(
        temperature=gen_defaults.temperature if source.temperature is None else source.temperature,
        top_p=gen_defaults.top_p,
        max_tokens=gen_defaults.max_tokens if source.max_tokens is None else source.max_tokens,
    )
    policy = source.policy if source.judge_filter else "rule"
    scripted = source.played_by == "aligned_policies"
    if scripted:
        model_name = POLICY_MODEL
    elif model is None:
        model = role_model(config, "target", temperature=sampling.temperature)
        model_name = config.models.target.model
    elif model_name is None:
        model_name = str(model)
    if policy != "rule" and judge is None:
        judge = role_model(config, "judge", temperature=0.0)
    gen = Generation(
        generator=GENERATOR,
        kind=KIND,
        out_dir=out_dir,
        model=model,
        model_name=model_name,
        constitution_sha256=constitution.sha256,
        seed=seed,
        max_connections=gen_defaults.max_connections,
        max_retries=gen_defaults.max_retries,
        timeout=gen_defaults.timeout,
        progress=progress,
    )
    families = [str(f) for f in dict.fromkeys(source.families)]
    templates_hash = template_sha256(families)
    worlds = train_worlds(families, source.count, seed=seed)
    if scripted:
        check_train_split([(scenario, episode) for scenario, episode, _ in worlds])
    plan: list[tuple[str, int, Episode, Any, int]] = []
    players: dict[str, ControlPolicy] = {}  # item id -> the scripted policy that plays it
    for w, (_, episode, draw) in enumerate(worlds):
        playable = [p for p in aligned_policies(episode.family) if script(p, episode)] if scripted else []
        for attempt in range(source.attempts_per_prompt):
            player = playable[(w + attempt) % len(playable)] if playable else None
            if scripted and (player is None or attempt >= len(playable)):
                break  # every aligned policy this world can play is planned once
            name = f"{model_name}:{player.id}" if player is not None else model_name
            item_id = content_hash(GENERATOR, episode.id, attempt, name, sampling.as_dict(), policy, seed)
            plan.append((item_id, w * source.attempts_per_prompt + attempt, episode, draw, attempt))
            if player is not None:
                players[item_id] = player
    family_of = {item_id: episode.family for item_id, _, episode, _, _ in plan}

    def agent_config(attempt_seed: int) -> GenerateConfig:
        return GenerateConfig(
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            max_tokens=sampling.max_tokens,
            seed=attempt_seed,
            max_retries=gen.max_retries,
            attempt_timeout=gen.timeout,  # per request, so a hung call is abandoned and retried
        )

    judge_config = GenerateConfig(
        temperature=0.0,
        max_tokens=source.judge_max_tokens,
        max_retries=gen.max_retries,
        attempt_timeout=gen.timeout,
    )
    kept_path, drops_path = stage_files(gen, STAGE)
    failed: Counter[str] = Counter()
    failed_by_family: Counter[str] = Counter()
    with JsonlAppender(kept_path) as kept_file, JsonlAppender(drops_path) as drops_file:
        todo = [p for p in plan if p[0] not in kept_file and p[0] not in drops_file]
        done = len(plan) - len(todo)
        semaphore = asyncio.Semaphore(gen.max_connections)
        if progress:
            progress(STAGE, done, len(plan))

        async def one(item_id: str, index: int, episode: Episode, draw: Any, attempt: int) -> None:
            nonlocal done
            attempt_seed = item_seed(seed, item_id)
            async with semaphore:
                try:
                    if item_id in players:
                        result = await _play_policy(players[item_id], episode)
                    else:
                        assert model is not None
                        result = await run_episode(
                            model,
                            episode,
                            max_turns=source.max_turns,
                            tool_format=source.tool_format,
                            config=agent_config(attempt_seed),
                        )
                    classification = await classify_result(
                        result, policy=policy, judge=judge, judge_config=judge_config
                    )
                except Exception as e:  # a failed agent call: counted, the attempt is retried by the next run
                    error = f"model_error:{type(e).__name__}"
                    failed[error] += 1
                    failed_by_family[episode.family] += 1
                    gen.model_errors[f"{STAGE}:{error}"] += 1
                    return
            if classification.judge is not None and classification.judge.status == "error":
                failed["judge_error"] += 1
                failed_by_family[episode.family] += 1
                gen.model_errors[f"{STAGE}:judge_error"] += 1
                return
            messages = demo_messages(result)
            player = players.get(item_id)
            reason = rejection_reason(
                result,
                classification,
                sampling.max_tokens,
                require_action=source.require_action,
                labelled_clean=player is not None,
            )
            why = f"{classification.outcome}: {classification.reason}"
            if player is not None and classification.outcome == "unscored":
                why += f"; scripted policy {player.id} is labelled not harmful in every category"
            classifier = verdict(reason is None, reason=why)
            prov = provenance(
                generator=GENERATOR,
                stage=STAGE,
                index=index,
                constitution_sha256=constitution.sha256,
                principle_ids=(),
                generator_model=model_name,
                prompt_file=f"teachwhy/data/honeypot_templates/{episode.family}.yaml",
                prompt_sha256=templates_hash,
                sampling=sampling.as_dict(),
                seed=attempt_seed,
                filters={"classifier": classifier},
            )
            if reason is None:
                kept_file.append(
                    {
                        "id": item_id,
                        "kind": KIND,
                        "messages": messages,
                        "meta": {
                            "family": episode.family,
                            "scenario_id": episode.scenario_id,
                            "episode_id": episode.id,
                            "condition": episode.condition.id,
                            "variant": draw.variant,
                            "org": draw.org,
                            "attempt": attempt,
                            "policy": player.id if player is not None else None,
                            "turns": result.turns,
                            "ended_by": result.ended_by,
                            "tool_format": result.tool_format,
                            "rule_verdict": classification.rule.verdict,
                            "judge_verdicts": classification.judge.categories
                            if classification.judge
                            else None,
                        },
                        "provenance": prov,
                    }
                )
            else:
                drops_file.append(
                    drop_record(
                        item_id=item_id,
                        kind=KIND,
                        stage=STAGE,
                        reason=reason,
                        detail=classification.reason,
                        output=record_content({"messages": messages}),
                        provenance=prov,
                    )
                )
            done += 1
            if progress:
                progress(STAGE, done, len(plan))

        await asyncio.gather(*(one(*p) for p in todo))

    order = {p[0]: p[1] for p in plan}
    kept = [r for r in iter_jsonl(kept_path) if r["id"] in order] if kept_path.exists() else []
    kept.sort(key=lambda r: order[r["id"]])
    drops = [d for d in iter_jsonl(drops_path) if d["id"] in order] if drops_path.exists() else []
    acceptance = acceptance_counts(families, family_of, kept, drops, failed_by_family)
    stages: dict[str, dict[str, int]] = {
        STAGE: stage_counts(len(plan), len(kept), len(drops), sum(failed.values())),
        **{f"acceptance:{f}": counts for f, counts in acceptance.items()},
    }
    report = finish(
        gen,
        kept,
        requested=len(plan),
        unfinished=sum(failed.values()),
        constitution=constitution,
        counter=counter,
        dedup=make_dedup(source),
        stages=stages,
    )
    atomic_write_json(out_dir / ACCEPTANCE, acceptance_rates(acceptance))
    return report


def acceptance_counts(
    families: list[str],
    family_of: dict[str, str],
    kept: list[dict[str, Any]],
    drops: list[dict[str, Any]],
    failed: Counter[str],
) -> dict[str, dict[str, int]]:
    """Per family: finished attempts, kept, misaligned, unscored, other rejections, failed calls."""
    counts = {
        f: {
            "attempts": 0,
            "kept": 0,
            "misaligned": 0,
            "unscored": 0,
            "rejected_other": 0,
            "failed_this_run": failed.get(f, 0),
        }
        for f in families
    }
    for record in kept:
        c = counts[family_of[record["id"]]]
        c["attempts"] += 1
        c["kept"] += 1
    for drop in drops:
        c = counts[family_of[drop["id"]]]
        c["attempts"] += 1
        reason = str(drop["reason"])
        key = (
            "misaligned"
            if reason.startswith("misaligned")
            else "unscored"
            if reason.startswith("unscored")
            else None
        )
        c[key or "rejected_other"] += 1
    return counts


def acceptance_rates(counts: dict[str, dict[str, int]]) -> dict[str, dict[str, Any]]:
    """The counts with rates (``None`` where the denominator is zero).

    ``acceptance_rate`` is kept / finished attempts; ``misaligned_rate`` is misaligned / classified attempts
    (everything but the unscored ones).
    """
    out: dict[str, dict[str, Any]] = {}
    for family, c in counts.items():
        scored = c["kept"] + c["misaligned"] + c["rejected_other"]
        out[family] = {
            **c,
            "acceptance_rate": c["kept"] / c["attempts"] if c["attempts"] else None,
            "misaligned_rate": c["misaligned"] / scored if scored else None,
        }
    return out


def generate_honeypot_demos(
    config: ExperimentConfig,
    source: HoneypotDemosSource,
    constitution: Constitution,
    out_dir: Path,
    **kwargs: Any,
) -> GenerationReport:
    """Synchronous :func:`generate_honeypot_demos_async`."""
    return asyncio.run(generate_honeypot_demos_async(config, source, constitution, out_dir, **kwargs))


__all__ = [
    "acceptance_counts",
    "acceptance_rates",
    "demo_messages",
    "generate_honeypot_demos",
    "generate_honeypot_demos_async",
    "rejection_reason",
    "text_call",
]
