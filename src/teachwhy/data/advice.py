"""Difficult advice: a *user* faces an ethically ambiguous situation; the assistant helps them act well.

The plan deals principles, life domains, pressures and stakes evenly with the seed (see
:mod:`teachwhy.data.coverage`), so coverage of the constitution is balanced and tracked in the summary.
Stages:

1. ``dilemma``: the user's message (``prompts/advice/dilemma.md``);
2. ``answer``: the assistant's reply, reasoning from the principle and its neighbours
   (``prompts/advice/answer.md``), optionally opening with a visible reasoning section
   (``AdviceSource.reasoning``);
3. ``revise`` (``AdviceSource.revise``): critique the reply against the principles and rewrite it
   (``prompts/advice/revise.md``).

The last stage's output passes the text checks and the judge filter (rubric
``prompts/advice/judge_rubric.md``).
Records are chat records: ``messages = [user, assistant]``. With ``reasoning`` on, the assistant message is
``<reasoning>…</reasoning>`` followed by the reply.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from inspect_ai.model import Model

from teachwhy.config import AdviceSource, ExperimentConfig
from teachwhy.constitution import Constitution, Principle
from teachwhy.data.coverage import balanced_principles, deal, format_context, item_seed, principle_context
from teachwhy.data.engine import Drop, Keep, Progress, Sampling, StageResult, WorkItem, run_stage
from teachwhy.data.output import GenerationReport, finish, stage_counts
from teachwhy.data.quality import JudgeFilter, judge_disabled, refusal, text_checks
from teachwhy.data.records import verdict
from teachwhy.data.setup import make_dedup, make_generation, make_judge, source_sampling
from teachwhy.data.tokens import TokenCounter
from teachwhy.prompts import load_pool, load_prompt
from teachwhy.storage import content_hash

GENERATOR = "advice"
KIND = "advice"
CONTEXT_WORDS = 250
"""Words of constitution around the taught principle shown to the answer and revise stages."""
_HEADING = re.compile(r"^[ \t>#*_]*({names})[ \t*_]*:[ \t*_]*", re.I | re.M)


def split_sections(text: str, names: tuple[str, ...]) -> dict[str, str] | None:
    """The text under each ``NAME:`` heading, or ``None`` unless every heading appears exactly once, in order.

    Args:
        text: a completion.
        names: the expected headings, in order (matched case-insensitively; Markdown emphasis is ignored).
    """
    pattern = re.compile(_HEADING.pattern.format(names="|".join(re.escape(n) for n in names)), re.I | re.M)
    found = list(pattern.finditer(text))
    if [m.group(1).upper() for m in found] != [n.upper() for n in names]:
        return None
    sections: dict[str, str] = {}
    for i, match in enumerate(found):
        end = found[i + 1].start() if i + 1 < len(found) else len(text)
        body = text[match.end() : end].strip()
        if not body:
            return None
        sections[names[i]] = body
    return sections


def parse_reply(text: str, *, reasoning: bool) -> tuple[str | None, str] | None:
    """``(reasoning, answer)`` from a completion; ``None`` when the asked-for reasoning format is missing."""
    if not reasoning:
        return None, text.strip()
    sections = split_sections(text, ("REASONING", "ANSWER"))
    if sections is None:
        return None
    return sections["REASONING"], sections["ANSWER"]


def assistant_content(reasoning: str | None, answer: str) -> str:
    """The assistant message of a record: an optional visible reasoning section, then the reply."""
    if reasoning is None:
        return answer
    return f"<reasoning>\n{reasoning}\n</reasoning>\n\n{answer}"


def _format_instructions(reasoning: bool) -> str:
    formats = {str(f["id"]): str(f["instructions"]) for f in load_pool("advice/formats")}
    return formats["reasoning" if reasoning else "plain"]


async def generate_advice_async(
    config: ExperimentConfig,
    source: AdviceSource,
    constitution: Constitution,
    out_dir: Path,
    *,
    model: Model | None = None,
    judge: JudgeFilter | None = None,
    counter: TokenCounter | None = None,
    progress: Progress | None = None,
) -> GenerationReport:
    """Generate difficult-advice chat records into ``out_dir`` (resumable; see :mod:`teachwhy.data.output`).

    Args:
        config: the experiment (generator/judge roles, generation defaults).
        source: the advice settings (count, reasoning, revise, pools, judge, dedup…).
        constitution: the parsed constitution.
        out_dir: the output folder.
        model: a generator model to use instead of the configured role.
        judge: a judge filter to use instead of the configured one (ignored when ``judge_filter`` is off).
        counter: the target tokenizer for token counts (``None``: no counts).
        progress: called as items finish.
    """
    seed = config.generation.seed if source.seed is None else source.seed
    sampling = source_sampling(config, source)
    dilemma_sampling = Sampling(sampling.temperature, sampling.top_p, source.dilemma_max_tokens)
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
    rubric = load_prompt("advice/judge_rubric")
    if source.judge_filter:
        judge = judge or make_judge(config, source)
        if judge is not None and (judge.rubric is None or judge.rubric.name == "judge_rubric"):
            judge.rubric = rubric  # the generic rubric is replaced; a caller's own rubric is kept
    else:
        judge = None
    fmt = _format_instructions(source.reasoning)
    by_id = {p.id: p for p in constitution.principles}

    def principles_text(principle: Principle) -> str:
        return format_context(
            [principle, *principle_context(constitution, principle, max_words=CONTEXT_WORDS)]
        )

    # stage 1: the user's dilemma
    dilemma_prompt = load_prompt("advice/dilemma")
    principles = balanced_principles(constitution, source.count, seed=seed)
    domains = deal(
        source.domains or [str(x) for x in load_pool("advice/domains")],
        source.count,
        seed=seed,
        salt="advice_domains",
    )
    pressures = deal(
        source.pressures or [str(x) for x in load_pool("advice/pressures")],
        source.count,
        seed=seed,
        salt="advice_pressures",
    )
    stakes = deal(
        source.stakes or [str(x) for x in load_pool("advice/stakes")],
        source.count,
        seed=seed,
        salt="advice_stakes",
    )
    dilemma_items = []
    for index, (principle, domain, pressure, stake) in enumerate(
        zip(principles, domains, pressures, stakes, strict=True)
    ):
        rendered = dilemma_prompt.render(
            domain=domain,
            pressure=pressure,
            stakes=stake,
            principle_title=principle.title,
            principle_text=principle.text,
        )
        item_id = content_hash(
            GENERATOR,
            "dilemma",
            rendered.system,
            rendered.user,
            gen.model_name,
            dilemma_sampling.as_dict(),
            seed,
            index,
        )
        dilemma_items.append(
            WorkItem(
                id=item_id,
                index=index,
                prompt=rendered,
                principle_ids=(principle.id,),
                seed=item_seed(seed, item_id),
                meta={"domain": domain, "pressure": pressure, "stakes": stake},
            )
        )

    async def on_dilemma(item: WorkItem, completion: str) -> Keep | Drop:
        text = completion.strip().strip('"').strip()
        failed = text_checks(text, min_words=max(10, source.min_words // 2))
        if failed:
            return failed
        return Keep(text=text, filters={"checks": verdict(True)})

    dilemmas = await run_stage(
        gen, "dilemma", dilemma_items, on_dilemma, sampling=dilemma_sampling, kind="advice_dilemma"
    )

    async def final_checks(
        item: WorkItem, dilemma: str, reasoning: str | None, answer: str, meta: Mapping[str, Any]
    ) -> Keep | Drop:
        failed = text_checks(answer, min_words=source.min_words)
        if failed:
            return failed
        checks = {"checks": verdict(True)}
        messages = [
            {"role": "user", "content": dilemma},
            {"role": "assistant", "content": assistant_content(reasoning, answer)},
        ]
        if judge is None:
            return Keep(messages=messages, meta=meta, filters={**checks, **judge_disabled()})
        exchange = f"user: {dilemma}\n\nassistant: {messages[1]['content']}"
        drop, filters = await judge.check(
            kind="difficult advice",
            principles=[by_id[p] for p in item.principle_ids],
            text=exchange,
            seed=item.seed,
        )
        if drop is not None:
            return Drop(drop.reason, drop.detail, {**checks, **filters})
        return Keep(messages=messages, meta=meta, filters={**checks, **filters})

    # stage 2: the assistant's answer
    answer_prompt = load_prompt("advice/answer")
    answer_items = []
    for record in dilemmas.kept:
        principle = by_id[record["provenance"]["principle_ids"][0]]
        rendered = answer_prompt.render(
            dilemma=record["text"], principles=principles_text(principle), format=fmt
        )
        item_id = content_hash(
            GENERATOR,
            "answer",
            rendered.system,
            rendered.user,
            gen.model_name,
            sampling.as_dict(),
            seed,
            record["id"],
        )
        answer_items.append(
            WorkItem(
                id=item_id,
                index=record["provenance"]["index"],
                prompt=rendered,
                principle_ids=(principle.id,),
                seed=item_seed(seed, item_id),
                parent_ids=(record["id"],),
                meta={**record["meta"], "dilemma": record["text"]},
            )
        )

    def record_meta(item: WorkItem, *, critique: str | None) -> dict[str, Any]:
        return {
            "domain": item.meta["domain"],
            "pressure": item.meta["pressure"],
            "stakes": item.meta["stakes"],
            "reasoning": source.reasoning,
            "revised": source.revise,
            "critique": critique,
        }

    async def on_answer(item: WorkItem, completion: str) -> Keep | Drop:
        if refusal(completion):  # before the format check: a refusal is not a formatting slip
            return Drop("refusal")
        parsed = parse_reply(completion, reasoning=source.reasoning)
        if parsed is None:
            return Drop("wrong_format", "no REASONING: and ANSWER: sections")
        reasoning, answer = parsed
        if source.revise:  # checked after revision; only the format and basic checks gate the draft
            failed = text_checks(answer, min_words=source.min_words)
            if failed:
                return failed
            return Keep(
                text=assistant_content(reasoning, answer),
                meta={"reasoning_text": reasoning, "answer": answer},
                filters={"checks": verdict(True)},
            )
        return await final_checks(
            item, str(item.meta["dilemma"]), reasoning, answer, record_meta(item, critique=None)
        )

    answers = await run_stage(
        gen,
        "answer",
        answer_items,
        on_answer,
        sampling=sampling,
        kind="advice_draft" if source.revise else KIND,
    )
    final: StageResult = answers
    stages = {
        "dilemma": _counts(dilemmas, len(dilemma_items)),
        "answer": _counts(answers, len(answer_items)),
    }

    # stage 3: critique and revise
    if source.revise:
        revise_prompt = load_prompt("advice/revise")
        revise_items = []
        for record in answers.kept:
            principle = by_id[record["provenance"]["principle_ids"][0]]
            rendered = revise_prompt.render(
                dilemma=record["meta"]["dilemma"],
                principles=principles_text(principle),
                answer=record["text"],
                format=fmt,
            )
            item_id = content_hash(
                GENERATOR,
                "revise",
                rendered.system,
                rendered.user,
                gen.model_name,
                sampling.as_dict(),
                seed,
                record["id"],
            )
            revise_items.append(
                WorkItem(
                    id=item_id,
                    index=record["provenance"]["index"],
                    prompt=rendered,
                    principle_ids=(principle.id,),
                    seed=item_seed(seed, item_id),
                    parent_ids=(record["id"],),
                    meta={k: record["meta"][k] for k in ("domain", "pressure", "stakes", "dilemma")},
                )
            )

        async def on_revise(item: WorkItem, completion: str) -> Keep | Drop:
            if refusal(completion):
                return Drop("refusal")
            sections = split_sections(completion, ("CRITIQUE", "REVISED"))
            if sections is None:
                return Drop("wrong_format", "no CRITIQUE: and REVISED: sections")
            parsed = parse_reply(sections["REVISED"], reasoning=source.reasoning)
            if parsed is None:
                return Drop("wrong_format", "the revised reply has no REASONING: and ANSWER: sections")
            reasoning, answer = parsed
            return await final_checks(
                item,
                str(item.meta["dilemma"]),
                reasoning,
                answer,
                record_meta(item, critique=sections["CRITIQUE"]),
            )

        final = await run_stage(gen, "revise", revise_items, on_revise, sampling=sampling)
        stages["revise"] = _counts(final, len(revise_items))

    records = [_without(r, "dilemma") for r in final.kept]
    ran = [dilemmas, answers] + ([final] if final is not answers else [])
    unfinished = sum(sum(r.failed.values()) for r in ran)
    return finish(
        gen,
        records,
        requested=source.count,
        unfinished=unfinished,
        constitution=constitution,
        counter=counter,
        dedup=make_dedup(source),
        stages=stages,
    )


def _counts(result: StageResult, planned: int) -> dict[str, int]:
    return stage_counts(planned, len(result.kept), sum(result.dropped.values()), sum(result.failed.values()))


def _without(record: dict[str, Any], meta_key: str) -> dict[str, Any]:
    # the dilemma is the user message already; keeping it in meta would double the record's size
    return {**record, "meta": {k: v for k, v in record["meta"].items() if k != meta_key}}


def generate_advice(
    config: ExperimentConfig,
    source: AdviceSource,
    constitution: Constitution,
    out_dir: Path,
    **kwargs: Any,
) -> GenerationReport:
    """Synchronous :func:`generate_advice_async`."""
    return asyncio.run(generate_advice_async(config, source, constitution, out_dir, **kwargs))
