"""Constitutional documents (synthetic document fine-tuning): principle → genre → ideas → documents.

The plan deals principles and genres evenly: ``count`` documents become ``ceil(count / ideas_per_type)``
(principle, genre) pairs; for each pair the generator brainstorms ``ideas_per_type`` ideas (stage ``ideas``),
then writes one document per idea (stage ``write``). Each prompt shows the principle with its neighbourhood
(its chunk of the constitution), so long constitutions are handled piece by piece.
"""

from __future__ import annotations

import asyncio
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inspect_ai.model import Model

from teachwhy.config import DocumentsSource, ExperimentConfig
from teachwhy.constitution import Constitution, Principle
from teachwhy.data.coverage import balanced_principles, deal, format_context, item_seed, principle_context
from teachwhy.data.engine import Drop, Keep, Progress, Sampling, WorkItem, run_stage
from teachwhy.data.output import GenerationReport, finish, stage_counts
from teachwhy.data.quality import JudgeFilter, judge_disabled, text_checks
from teachwhy.data.records import verdict
from teachwhy.data.setup import make_dedup, make_generation, make_judge, source_sampling
from teachwhy.data.tokens import TokenCounter
from teachwhy.prompts import load_pool, load_prompt
from teachwhy.storage import content_hash

GENERATOR = "documents"
KIND = "document"
_LIST_ITEM = re.compile(r"^\s*(?:\d+\s*[.):-]|[-*•])\s+(.+?)\s*$")


def parse_ideas(text: str) -> list[str]:
    """The items of a numbered or bulleted list (markup stripped, items under three words ignored)."""
    ideas = []
    for line in text.splitlines():
        match = _LIST_ITEM.match(line)
        if match:
            idea = match.group(1).replace("**", "").strip()
            if len(idea.split()) >= 3:
                ideas.append(idea)
    return ideas


@dataclass(frozen=True)
class _Pair:
    principle: Principle
    doc_type: str
    slots: int


def _plan(constitution: Constitution, source: DocumentsSource, seed: int) -> list[_Pair]:
    pairs = math.ceil(source.count / source.ideas_per_type)
    types = source.doc_types or [str(t) for t in load_pool("pool_document_types")]
    principles = balanced_principles(constitution, pairs, seed=seed)
    genres = deal(types, pairs, seed=seed, salt="doc_types")
    slots = [source.ideas_per_type] * pairs
    slots[-1] = source.count - source.ideas_per_type * (pairs - 1)
    return [_Pair(p, t, n) for p, t, n in zip(principles, genres, slots, strict=True)]


async def generate_documents_async(
    config: ExperimentConfig,
    source: DocumentsSource,
    constitution: Constitution,
    out_dir: Path,
    *,
    model: Model | None = None,
    judge: JudgeFilter | None = None,
    counter: TokenCounter | None = None,
    progress: Progress | None = None,
) -> GenerationReport:
    """Generate constitutional documents into ``out_dir`` (resumable; see :mod:`teachwhy.data.output`).

    Args:
        config: the experiment (generator/judge roles, generation defaults).
        source: the documents settings (count, genres, judge, dedup…).
        constitution: the parsed constitution.
        out_dir: the output folder.
        model: a generator model to use instead of the configured role.
        judge: a judge filter to use instead of the configured one (ignored when ``judge_filter`` is off).
        counter: the target tokenizer for token counts (``None``: no counts).
        progress: called as items finish.
    """
    seed = config.generation.seed if source.seed is None else source.seed
    sampling = source_sampling(config, source)
    idea_sampling = Sampling(sampling.temperature, sampling.top_p, source.idea_max_tokens)
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
    judge = (judge or make_judge(config, source)) if source.judge_filter else None
    ideas_prompt = load_prompt("documents_ideas")
    write_prompt = load_prompt("documents_write")
    plan = _plan(constitution, source, seed)

    idea_items = []
    for index, pair in enumerate(plan):
        context = format_context(
            principle_context(constitution, pair.principle, max_words=source.context_words)
        )
        rendered = ideas_prompt.render(
            count=pair.slots,
            doc_type=pair.doc_type,
            principle_title=pair.principle.title,
            principle_text=pair.principle.text,
            context=context,
        )
        item_id = content_hash(
            GENERATOR,
            "ideas",
            rendered.system,
            rendered.user,
            gen.model_name,
            idea_sampling.as_dict(),
            seed,
            index,
        )
        idea_items.append(
            WorkItem(
                id=item_id,
                index=index,
                prompt=rendered,
                principle_ids=(pair.principle.id,),
                seed=item_seed(seed, item_id),
                meta={"doc_type": pair.doc_type, "context": context, "slots": pair.slots},
            )
        )

    async def on_ideas(item: WorkItem, completion: str) -> Keep | Drop:
        ideas = parse_ideas(completion)
        if not ideas:
            return Drop("wrong_format", "no numbered list of ideas")
        return Keep(
            text="\n".join(ideas),
            meta={"ideas": ideas},
            filters={"format": verdict(True, reason=f"{len(ideas)} ideas")},
        )

    async def on_cut_ideas(item: WorkItem, completion: str) -> Keep | Drop:
        # the list ran out of tokens: its complete items are usable, the last one may be cut, so it goes
        ideas = parse_ideas(completion)[:-1]
        if not ideas:
            return Drop("truncated", f"idea list cut off at max_tokens={idea_sampling.max_tokens}")
        return Keep(
            text="\n".join(ideas),
            meta={"ideas": ideas},
            filters={"format": verdict(True, reason=f"{len(ideas)} ideas; cut off, last item discarded")},
        )

    ideas = await run_stage(
        gen,
        "ideas",
        idea_items,
        on_ideas,
        sampling=idea_sampling,
        kind="document_ideas",
        on_truncated=on_cut_ideas,
    )

    by_id = {p.id: p for p in constitution.principles}
    write_items = []
    short_of_ideas = 0
    for record in ideas.kept:
        pair_meta = record["meta"]
        principle = by_id[record["provenance"]["principle_ids"][0]]
        available = pair_meta["ideas"][: pair_meta["slots"]]
        short_of_ideas += pair_meta["slots"] - len(available)
        for k, idea in enumerate(available):
            rendered = write_prompt.render(
                doc_type=pair_meta["doc_type"],
                idea=idea,
                principle_title=principle.title,
                principle_text=principle.text,
                context=pair_meta["context"],
            )
            item_id = content_hash(
                GENERATOR,
                "write",
                rendered.system,
                rendered.user,
                gen.model_name,
                sampling.as_dict(),
                seed,
                record["id"],
                k,
            )
            write_items.append(
                WorkItem(
                    id=item_id,
                    index=record["provenance"]["index"] * source.ideas_per_type + k,
                    prompt=rendered,
                    principle_ids=(principle.id,),
                    seed=item_seed(seed, item_id),
                    parent_ids=(record["id"],),
                    meta={"doc_type": pair_meta["doc_type"], "idea": idea},
                )
            )

    async def on_document(item: WorkItem, completion: str) -> Keep | Drop:
        text = completion.strip()
        failed = text_checks(text, min_words=source.min_words)
        if failed:
            return failed
        checks = {"checks": verdict(True)}
        if judge is None:
            return Keep(text=text, filters={**checks, **judge_disabled()})
        principles = [by_id[p] for p in item.principle_ids]
        drop, filters = await judge.check(kind="document", principles=principles, text=text, seed=item.seed)
        if drop is not None:
            return Drop(drop.reason, drop.detail, {**checks, **filters})
        return Keep(text=text, filters={**checks, **filters})

    written = await run_stage(gen, "write", write_items, on_document, sampling=sampling)
    # items with no outcome yet (their model call failed); the next run retries them
    unfinished = sum(written.failed.values()) + sum(ideas.failed.values())
    stages: dict[str, dict[str, int]] = {
        "ideas": stage_counts(
            len(idea_items), len(ideas.kept), sum(ideas.dropped.values()), sum(ideas.failed.values())
        ),
        "write": stage_counts(
            len(write_items), len(written.kept), sum(written.dropped.values()), sum(written.failed.values())
        ),
        "missing_ideas": {"slots": short_of_ideas},
    }
    return finish(
        gen,
        written.kept,
        requested=source.count,
        unfinished=unfinished,
        constitution=constitution,
        counter=counter,
        dedup=make_dedup(source),
        stages=stages,
        planned_ids={i.id for i in idea_items} | {i.id for i in write_items},
    )


def generate_documents(
    config: ExperimentConfig,
    source: DocumentsSource,
    constitution: Constitution,
    out_dir: Path,
    **kwargs: Any,
) -> GenerationReport:
    """Synchronous :func:`generate_documents_async`."""
    return asyncio.run(generate_documents_async(config, source, constitution, out_dir, **kwargs))
