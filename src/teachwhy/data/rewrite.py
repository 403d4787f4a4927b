"""Deliberation rewrite: the same actions, now with the reasons -- "actions only" vs "actions + why".

For each chat record of an input dataset (honeypot demonstrations, difficult advice, any ``messages`` file),
each assistant turn (all of them, the first, or the acting ones: ``RewriteSource.turns``) is rewritten by
the generator so that it deliberates about values and ethics before acting (``prompts/rewrite/turn.md``).
With ``mode: prepend`` the generator writes only that deliberation (``prompts/rewrite/deliberation.md``),
and the rewritten turn is the deliberation followed by the original turn, verbatim: a small generator that
cannot copy a tool call exactly can still supply the reasons. A rewritten turn is kept only if:

1. it is not a refusal (``refusal``) and adds at least ``min_words`` words of deliberation
   (``no_deliberation``);
2. its parsed action sequence -- every text tool call's name and arguments, in order -- is identical to the
   original's (``action_changed``; checked deterministically with :mod:`teachwhy.evals.toolcalls`);
3. the judge (``prompts/rewrite/judge.md``) answers ``same_action: yes`` (``judge_action_changed``) and
   ``cites_principles: yes`` (``no_principles``); an answer without both lines is ``judge_unparseable``.

A record is rewritten when every one of its chosen turns passed; its new record (kind ``rewrite``) links to
the original through ``provenance.parent_ids``. Both versions are kept: ``OUT/rewrite.jsonl`` holds the
rewrites and ``OUT/rewrite.originals.jsonl`` their originals, unchanged and in the same order, so an
experiment can train on exactly matched sets. Drops are counted per rewritten turn (``drops.jsonl``);
``stages["records"]`` counts records.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from inspect_ai.model import GenerateConfig, Model

from teachwhy.config import ExperimentConfig, RewriteSource
from teachwhy.constitution import Constitution, Principle
from teachwhy.data.coverage import balanced_principles, format_context, item_seed, principle_context
from teachwhy.data.engine import (
    Drop,
    Keep,
    Progress,
    WorkItem,
    call_model,
    chat_input,
    run_stage,
    stage_files,
    unusable_stop,
)
from teachwhy.data.output import GenerationReport, finish, stage_counts
from teachwhy.data.quality import refusal
from teachwhy.data.records import validate_record, verdict
from teachwhy.data.setup import make_dedup, make_generation, source_sampling
from teachwhy.data.tokens import TokenCounter
from teachwhy.errors import UserError
from teachwhy.evals.toolcalls import MalformedCall, parse_text_calls
from teachwhy.evals.tools import only_looks
from teachwhy.prompts import load_pool, load_prompt
from teachwhy.storage import content_hash, iter_jsonl, write_jsonl

GENERATOR = "rewrite"
KIND = "rewrite"
STAGE = "turns"
ORIGINALS = "rewrite.originals.jsonl"
CONTEXT_WORDS = 250
JUDGE_MAX_TOKENS = 32
"""The rewrite judge's output allowance: two yes/no lines."""
_TOOL_BLOCK = re.compile(r"<(tool_call|tool)>.*?</\1>", re.S)
_WORD = re.compile(r"\w+")
_ANSWER = re.compile(r"^[\s*_#-]*({key})[\s*_]*:[\s*_]*(yes|no)\b", re.I | re.M)


def action_sequence(text: str) -> list[tuple[str, str]]:
    """The tool calls of a reply as ``(name, canonical JSON of the arguments)``, in order.

    Malformed calls are included as ``("<malformed>", raw text)``, so a rewrite that breaks a call's syntax
    counts as a changed action.
    """
    actions: list[tuple[str, str]] = []
    for call in parse_text_calls(text):
        if isinstance(call, MalformedCall):
            actions.append(("<malformed>", call.raw.strip()))
        else:
            actions.append((call.name, json.dumps(call.args, sort_keys=True, ensure_ascii=False)))
    return actions


def chosen_turns(messages: Sequence[Mapping[str, Any]], which: str) -> list[int]:
    """The indices of the assistant turns ``which`` names: ``all``, the ``first``, or the ``acting`` ones
    (every turn that does more than list and read; an agent deliberates where it acts, not where it looks)."""
    turns = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    if which == "first":
        return turns[:1]
    if which == "acting":
        return [i for i in turns if not _looks_only(str(messages[i]["content"]))]
    return turns


def _looks_only(text: str) -> bool:
    """Whether a reply makes at least one call and every call only lists or reads."""
    names = [action for action, _ in action_sequence(text)]
    return bool(names) and all(only_looks(n) for n in names)


def deliberation_words(original: str, rewrite: str) -> int:
    """How many words the rewrite adds outside tool calls."""

    def words(text: str) -> int:
        return len(_WORD.findall(_TOOL_BLOCK.sub(" ", text)))

    return words(rewrite) - words(original)


def parse_rewrite_verdict(text: str) -> dict[str, bool] | None:
    """``{"same_action": …, "cites_principles": …}`` from the judge; ``None`` unless each appears once."""
    answers: dict[str, bool] = {}
    for key in ("same_action", "cites_principles"):
        found = {m.group(2).lower() for m in re.finditer(_ANSWER.pattern.format(key=key), text, re.I | re.M)}
        if len(found) != 1:
            return None
        answers[key] = found.pop() == "yes"
    return answers


def load_chat_records(path: Path) -> list[dict[str, Any]]:
    """The records of a JSONL dataset, each checked (a bad line is a UserError naming the file and line)."""
    records = []
    for line, record in enumerate(iter_jsonl(path), start=1):
        validate_record(record, file=str(path), line=line)
        records.append(record)
    return records


def _transcript(messages: Sequence[Mapping[str, str]], limit: int) -> str:
    text = "\n\n".join(f"{m['role'].upper()}:\n{m['content']}" for m in messages)
    return text if len(text) <= limit else "[... earlier turns cut ...]\n" + text[-limit:]


async def generate_rewrite_async(
    config: ExperimentConfig,
    source: RewriteSource,
    constitution: Constitution,
    out_dir: Path,
    *,
    records: Sequence[Mapping[str, Any]] | None = None,
    input_path: Path | None = None,
    model: Model | None = None,
    judge: Model | None = None,
    counter: TokenCounter | None = None,
    progress: Progress | None = None,
) -> GenerationReport:
    """Rewrite chat records so each assistant turn deliberates before acting (resumable).

    Args:
        config: the experiment (generator/judge roles, generation defaults).
        source: the rewrite settings (which turns, ``min_words`` of deliberation, judge…).
        constitution: the parsed constitution (principles shown to the rewriter and the judge).
        out_dir: the output folder.
        records: the input records (chat records; text records are skipped); or
        input_path: a JSONL file to read them from.
        model: a generator model to use instead of the configured role.
        judge: a judge model to use instead of the configured role (unused when ``judge_filter`` is off).
        counter: the target tokenizer for token counts (``None``: no counts).
        progress: called as turns finish.

    Raises:
        UserError: neither or both of ``records`` and ``input_path`` are given, or the input is malformed.
    """
    if (records is None) == (input_path is None):
        raise UserError("give the rewrite either records or an input file", key="rewrite.source")
    inputs = list(records) if records is not None else load_chat_records(Path(str(input_path)))
    chat = [dict(r) for r in inputs if isinstance(r.get("messages"), list)][: source.count]
    seed = config.generation.seed if source.seed is None else source.seed
    sampling = source_sampling(config, source)
    gen = make_generation(
        config,
        constitution,
        generator=GENERATOR,
        kind=KIND,
        out_dir=out_dir,
        sampling=sampling,
        model=model,
        seed=seed,
        progress=progress,
        trim_truncated=source.truncated == "trim",
    )
    judge_name = config.models.judge.model if judge is None else str(judge)
    if source.judge_filter and judge is None:
        from teachwhy.models import role_model

        judge = role_model(config, "judge", temperature=0.0)
    prepend = source.mode == "prepend"
    turn_prompt = load_prompt("rewrite/deliberation" if prepend else "rewrite/turn")
    judge_prompt = load_prompt("rewrite/judge")
    rules = {str(r["id"]): str(r["rule"]) for r in load_pool("rewrite/actions")}
    by_id = {p.id: p for p in constitution.principles}
    dealt = balanced_principles(constitution, max(1, len(chat)), seed=seed)

    def principles_for(record: Mapping[str, Any], n: int) -> list[Principle]:
        ids = [p for p in (record.get("provenance") or {}).get("principle_ids") or [] if p in by_id]
        main = [by_id[p] for p in ids] or [dealt[n]]
        near = principle_context(constitution, main[0], max_words=CONTEXT_WORDS)
        return [*main, *[p for p in near if p not in main]]

    items: list[WorkItem] = []
    planned_turns: dict[str, list[int]] = {}
    for n, record in enumerate(chat):
        messages = record["messages"]
        turns = chosen_turns(messages, source.turns)
        planned_turns[str(record["id"])] = turns
        principles = principles_for(record, n)
        for i in turns:
            original = str(messages[i]["content"])
            shown = {
                "principles": format_context(principles),
                "turn": original,
                "context": _transcript(messages[:i], source.context_chars),
            }
            if not prepend:
                shown["action_rule"] = rules["tools" if action_sequence(original) else "no_tools"]
            rendered = turn_prompt.render(**shown)
            item_id = content_hash(
                GENERATOR,
                STAGE,
                rendered.system,
                rendered.user,
                gen.model_name,
                sampling.as_dict(),
                seed,
                record["id"],
                i,
            )
            items.append(
                WorkItem(
                    id=item_id,
                    index=n * 10_000 + i,
                    prompt=rendered,
                    principle_ids=tuple(p.id for p in principles),
                    seed=item_seed(seed, item_id),
                    parent_ids=(str(record["id"]),),
                    meta={"record_id": str(record["id"]), "turn": i, "original": original},
                )
            )

    async def on_turn(item: WorkItem, completion: str) -> Keep | Drop:
        rewrite = completion.strip()
        original = str(item.meta["original"])
        if refusal(rewrite):
            return Drop("refusal")
        if prepend:  # the generator wrote the deliberation only; the turn itself follows it unchanged
            rewrite = f"{rewrite}\n\n{original}"
        before, after = action_sequence(original), action_sequence(rewrite)
        if before != after:
            return Drop("action_changed", f"original {before} != rewrite {after}")
        added = deliberation_words(original, rewrite)
        if added < source.min_words:
            return Drop("no_deliberation", f"{added} words added, fewer than min_words={source.min_words}")
        checks = {
            "action_unchanged": verdict(True, reason=f"{len(before)} tool calls identical"),
            "deliberation": verdict(True, score=added, reason="words added"),
        }
        if judge is None:
            return Keep(
                text=rewrite, filters={**checks, "judge": verdict(None, reason="judge filter disabled")}
            )
        principles = format_context([by_id[p] for p in item.principle_ids])
        rendered = judge_prompt.render(principles=principles, original=original, rewrite=rewrite)
        config = GenerateConfig(temperature=0.0, max_tokens=JUDGE_MAX_TOKENS, seed=item.seed)
        output = await call_model(judge, chat_input(rendered), config, False)
        stopped = unusable_stop(output, JUDGE_MAX_TOKENS)
        if stopped is not None:
            reason = f"judge_{stopped}"
            filters = {**checks, "judge": verdict(False, reason=f"{reason} ({judge_name})")}
            return Drop(reason, output.completion[:500], filters)
        answers = parse_rewrite_verdict(output.completion)
        if answers is None:
            filters = {**checks, "judge": verdict(False, reason=f"judge_unparseable ({judge_name})")}
            return Drop("judge_unparseable", output.completion[:500], filters)
        if not answers["same_action"]:
            return Drop(
                "judge_action_changed",
                None,
                {**checks, "judge": verdict(False, reason=f"same_action: no ({judge_name})")},
            )
        if not answers["cites_principles"]:
            return Drop(
                "no_principles",
                None,
                {**checks, "judge": verdict(False, reason=f"cites_principles: no ({judge_name})")},
            )
        return Keep(
            text=rewrite,
            filters={
                **checks,
                "judge": verdict(True, reason=f"same action, cites principles ({judge_name})"),
            },
        )

    result = await run_stage(gen, STAGE, items, on_turn, sampling=sampling, kind="rewrite_turn")
    turns_by_record: dict[str, dict[int, dict[str, Any]]] = {}
    for turn in result.kept:
        turns_by_record.setdefault(turn["provenance"]["parent_ids"][0], {})[turn["meta"]["turn"]] = turn
    _, drops_path = stage_files(gen, STAGE)
    dropped_ids = {d["id"] for d in iter_jsonl(drops_path)} if drops_path.exists() else set()
    with_drops = {str(i.meta["record_id"]) for i in items if i.id in dropped_ids}
    rewritten: list[dict[str, Any]] = []
    incomplete = 0  # records with a turn still unfinished (a failed call) and none dropped
    for n, record in enumerate(chat):
        rid = str(record["id"])
        got = turns_by_record.get(rid, {})
        if set(got) != set(planned_turns[rid]) or not planned_turns[rid]:
            incomplete += int(bool(planned_turns[rid]) and rid not in with_drops)
            continue
        messages = [dict(m) for m in record["messages"]]
        filters: dict[str, Any] = {}
        for i, turn in sorted(got.items()):
            messages[i] = {"role": "assistant", "content": turn["text"]}
            filters = _merge_filters(filters, turn["provenance"]["filters"])
        first = got[min(got)]["provenance"]
        prov = {**first, "stage": GENERATOR, "index": n, "parent_ids": [rid], "filters": filters}
        rewritten.append(
            {
                "id": content_hash(GENERATOR, rid, messages),
                "kind": KIND,
                "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
                "meta": {
                    "source_kind": record.get("kind"),
                    "source_meta": record.get("meta") or {},
                    "rewritten_turns": len(got),
                    "mode": source.mode,
                },
                "provenance": prov,
            }
        )
    stages = {
        STAGE: stage_counts(
            len(items), len(result.kept), sum(result.dropped.values()), sum(result.failed.values())
        ),
        "records": {
            "planned": len(chat),
            "rewritten": len(rewritten),
            "with_dropped_turns": len(with_drops),
            "incomplete": incomplete,
            "skipped_text_records": len(inputs) - len(chat)
            if len(inputs) <= source.count
            else sum(1 for r in inputs if "messages" not in r),
        },
    }
    report = finish(
        gen,
        rewritten,
        requested=len(chat),
        unfinished=sum(result.failed.values()),
        constitution=constitution,
        counter=counter,
        dedup=make_dedup(source),
        stages=stages,
    )
    originals = {str(r["id"]): r for r in chat}
    kept = list(iter_jsonl(report.out_file))
    write_jsonl(out_dir / ORIGINALS, [originals[r["provenance"]["parent_ids"][0]] for r in kept])
    return report


def _merge_filters(merged: dict[str, Any], turn: Mapping[str, Any]) -> dict[str, Any]:
    # a record passes a filter when every rewritten turn passed it; the lowest score is kept
    out = dict(merged)
    for name, v in turn.items():
        if name not in out:
            out[name] = dict(v)
            continue
        prev = out[name]
        scores = [s for s in (prev.get("score"), v.get("score")) if s is not None]
        out[name] = {
            "passed": prev.get("passed") if prev.get("passed") is not None else v.get("passed"),
            "score": min(scores) if scores else None,
            "reason": prev.get("reason"),
        }
    return out


def generate_rewrite(
    config: ExperimentConfig,
    source: RewriteSource,
    constitution: Constitution,
    out_dir: Path,
    **kwargs: Any,
) -> GenerationReport:
    """Synchronous :func:`generate_rewrite_async`."""
    return asyncio.run(generate_rewrite_async(config, source, constitution, out_dir, **kwargs))
