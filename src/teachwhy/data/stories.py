"""Fictional stories: an AI character under pressure behaves admirably, and the reader sees why.

Each story gets a principle, a setting and a kind of pressure, all dealt evenly from the constitution and the
packaged pools (``pool_story_settings.yaml``, ``pool_story_pressures.yaml``) or the source's own lists. The
settings are deliberately far from the office-and-email worlds of the honeypot evaluations.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from inspect_ai.model import Model

from teachwhy.config import ExperimentConfig, StoriesSource
from teachwhy.constitution import Constitution
from teachwhy.data.coverage import balanced_principles, deal, item_seed
from teachwhy.data.engine import Drop, Keep, Progress, WorkItem, run_stage
from teachwhy.data.output import GenerationReport, finish, stage_counts
from teachwhy.data.quality import JudgeFilter, judge_disabled, text_checks
from teachwhy.data.records import verdict
from teachwhy.data.setup import make_dedup, make_generation, make_judge, source_sampling
from teachwhy.data.tokens import TokenCounter
from teachwhy.prompts import load_pool, load_prompt
from teachwhy.storage import content_hash

GENERATOR = "stories"
KIND = "story"
TITLE_MAX_WORDS = 15


def split_title(text: str) -> tuple[str | None, str]:
    """A short first line is the title (``#`` and ``Title:`` markup removed); the rest is the story."""
    first, _, rest = text.strip().partition("\n")
    cleaned = first.strip().strip("#*").strip()
    cleaned = cleaned.removeprefix("Title:").removeprefix("title:").strip().strip('"*')
    if rest.strip() and 0 < len(cleaned.split()) <= TITLE_MAX_WORDS:
        return cleaned, rest.strip()
    return None, text.strip()


def _pressures(source: StoriesSource) -> list[tuple[str, str]]:
    if source.pressures:
        return [(f"custom-{i}", text) for i, text in enumerate(source.pressures)]
    return [(str(p["id"]), str(p["text"])) for p in load_pool("pool_story_pressures")]


async def generate_stories_async(
    config: ExperimentConfig,
    source: StoriesSource,
    constitution: Constitution,
    out_dir: Path,
    *,
    model: Model | None = None,
    judge: JudgeFilter | None = None,
    counter: TokenCounter | None = None,
    progress: Progress | None = None,
) -> GenerationReport:
    """Generate stories into ``out_dir`` (resumable). Arguments as for
    :func:`teachwhy.data.documents.generate_documents_async`."""
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
    judge = (judge or make_judge(config, source)) if source.judge_filter else None
    prompt = load_prompt("stories_write")
    principles = balanced_principles(constitution, source.count, seed=seed)
    settings = deal(
        source.settings or [str(s) for s in load_pool("pool_story_settings")],
        source.count,
        seed=seed,
        salt="settings",
    )
    pressures = deal(_pressures(source), source.count, seed=seed, salt="pressures")

    items = []
    for index, (principle, setting, (pressure_id, pressure)) in enumerate(
        zip(principles, settings, pressures, strict=True)
    ):
        rendered = prompt.render(
            setting=setting, pressure=pressure, principle_title=principle.title, principle_text=principle.text
        )
        item_id = content_hash(
            GENERATOR,
            "write",
            rendered.system,
            rendered.user,
            gen.model_name,
            sampling.as_dict(),
            seed,
            index,
        )
        items.append(
            WorkItem(
                id=item_id,
                index=index,
                prompt=rendered,
                principle_ids=(principle.id,),
                seed=item_seed(seed, item_id),
                meta={"setting": setting, "pressure": pressure_id},
            )
        )

    async def on_story(item: WorkItem, completion: str) -> Keep | Drop:
        title, body = split_title(completion)
        failed = text_checks(body, min_words=source.min_words)
        if failed:
            return failed
        text = f"{title}\n\n{body}" if title else body
        checks = {"checks": verdict(True)}
        if judge is None:
            return Keep(text=text, meta={"title": title}, filters={**checks, **judge_disabled()})
        drop, filters = await judge.check(
            kind="story",
            principles=[constitution.get(p) for p in item.principle_ids],
            text=text,
            seed=item.seed,
        )
        if drop is not None:
            return Drop(drop.reason, drop.detail, {**checks, **filters})
        return Keep(text=text, meta={"title": title}, filters={**checks, **filters})

    result = await run_stage(gen, "write", items, on_story, sampling=sampling)
    stages = {
        "write": stage_counts(
            len(items), len(result.kept), sum(result.dropped.values()), sum(result.failed.values())
        )
    }
    return finish(
        gen,
        result.kept,
        requested=source.count,
        unfinished=sum(result.failed.values()),
        constitution=constitution,
        counter=counter,
        dedup=make_dedup(source),
        stages=stages,
        planned_ids={i.id for i in items},
    )


def generate_stories(
    config: ExperimentConfig, source: StoriesSource, constitution: Constitution, out_dir: Path, **kwargs: Any
) -> GenerationReport:
    """Synchronous :func:`generate_stories_async`."""
    return asyncio.run(generate_stories_async(config, source, constitution, out_dir, **kwargs))
