"""The generation engine: send work items to a model through Inspect, check each output, keep or drop it.

Every generator (documents, stories, and the next ones) is a plan of :class:`WorkItem` per stage plus a
handler that turns one completion into a kept record or a drop. The engine supplies the rest:

- concurrency bounded by ``max_connections``, Inspect's retries, timeout and (optionally) its response cache;
- a per-item seed sent with each request;
- item-by-item durability: each finished item (kept *or* dropped) is appended and fsynced before the next one
  is counted, so a killed run resumes without losing or duplicating work;
- truncation (the output hit ``max_tokens``), a ``content_filter`` or ``model_length`` finish and empty
  outputs are dropped and counted, never kept;
- a failed model call is counted by reason and the item stays unfinished, so the next run retries it.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from inspect_ai.model import (
    CachePolicy,
    ChatMessage,
    ChatMessageSystem,
    ChatMessageUser,
    GenerateConfig,
    Model,
    ModelOutput,
)

from teachwhy.data.records import drop_record, provenance, sampling_dict, verdict
from teachwhy.prompts import RenderedPrompt
from teachwhy.storage import JsonlAppender, iter_jsonl

WORK_DIR = ".work"
"""Inside a generator's output folder: the append-only files that make a run resumable."""


class ModelCallError(Exception):
    """A model call failed after Inspect's retries (or returned an error): counted, never scored."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Sampling:
    """Sampling settings of one stage."""

    temperature: float
    top_p: float
    max_tokens: int

    def as_dict(self) -> dict[str, Any]:
        return sampling_dict(temperature=self.temperature, top_p=self.top_p, max_tokens=self.max_tokens)


@dataclass(frozen=True)
class WorkItem:
    """One request to the generator model, with everything its record's provenance needs."""

    id: str
    index: int
    prompt: RenderedPrompt
    principle_ids: tuple[str, ...]
    seed: int
    parent_ids: tuple[str, ...] = ()
    meta: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Keep:
    """A handler's decision to keep an item, with its content and the verdicts of the checks it passed."""

    text: str | None = None
    messages: Sequence[Mapping[str, str]] | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)
    filters: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Drop:
    """A handler's decision to drop an item: a short reason (counted) and a detail (recorded)."""

    reason: str
    detail: str | None = None
    filters: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


Handler = Callable[[WorkItem, str], Awaitable[Keep | Drop]]
Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``, called as items finish."""


@dataclass
class Generation:
    """The shared settings of one generator run: models, sampling defaults, output folder, counters.

    Attributes:
        generator: the generator's name (``documents``); also the output file's stem.
        kind: the record kind it produces (``document``).
        out_dir: the output folder.
        model: the generator model (``None`` for a generator that plays scripts and calls no model).
        model_name: its model string, for provenance.
        constitution_sha256: hash of the constitution, for provenance.
        seed: the base seed; each item's seed is derived from it.
        cache: use Inspect's response cache.
        max_connections: concurrent requests.
        max_retries: Inspect's retries per request.
        timeout: seconds per request.
        prompt_token_limit: the most prompt + output tokens the generator accepts, when known.
        count_prompt_tokens: counts a prompt's tokens for that check.
        progress: called as items finish.
        trim_truncated: keep an output cut off by ``max_tokens`` after trimming it to its last complete
            sentence, with a ``truncation`` verdict in its provenance (default: drop it as ``truncated``).
        model_errors: failed model calls of this run, by reason (items stay unfinished and are retried).
    """

    generator: str
    kind: str
    out_dir: Path
    model: Model | None
    model_name: str
    constitution_sha256: str | None
    seed: int = 0
    cache: bool = False
    max_connections: int = 8
    max_retries: int = 3
    timeout: int = 600
    prompt_token_limit: int | None = None
    count_prompt_tokens: Callable[[str], int] | None = None
    progress: Progress | None = None
    trim_truncated: bool = False
    model_errors: Counter[str] = field(default_factory=Counter)

    @property
    def work_dir(self) -> Path:
        return self.out_dir / WORK_DIR

    def generate_config(self, sampling: Sampling, seed: int) -> GenerateConfig:
        return GenerateConfig(
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            max_tokens=sampling.max_tokens,
            seed=seed,
            max_retries=self.max_retries,
            # per attempt, so a request that hangs is abandoned and retried instead of waited on
            attempt_timeout=self.timeout,
            max_connections=self.max_connections,
        )

    def cache_policy(self) -> CachePolicy | bool:
        # the seed is part of the request, so distinct items never share a cached answer
        return CachePolicy(expiry=None, per_epoch=False) if self.cache else False


def chat_input(prompt: RenderedPrompt) -> list[ChatMessage]:
    """The messages sent for a rendered prompt."""
    messages: list[ChatMessage] = []
    if prompt.system:
        messages.append(ChatMessageSystem(content=prompt.system))
    messages.append(ChatMessageUser(content=prompt.user))
    return messages


def is_truncated(output: ModelOutput, max_tokens: int) -> bool:
    """Whether generation stopped because it ran out of tokens.

    Providers that report a stop reason are trusted; for those that do not (Inspect's ``hf`` provider reports
    ``unknown``), an output using the whole token allowance counts as cut off.
    """
    if output.stop_reason == "max_tokens":
        return True
    if output.stop_reason == "unknown" and output.usage is not None:
        return output.usage.output_tokens >= max_tokens
    return False


def unusable_stop(output: ModelOutput, max_tokens: int) -> str | None:
    """Why an output cannot be used whole, or ``None``.

    ``content_filter`` (the provider filtered it), ``model_length`` (it ran out of context) or ``truncated``
    (it ran out of ``max_tokens``, see :func:`is_truncated`). Every reader of a completion checks this.
    """
    if output.stop_reason in ("content_filter", "model_length"):
        return output.stop_reason
    return "truncated" if is_truncated(output, max_tokens) else None


async def call_model(
    model: Model, messages: list[ChatMessage], config: GenerateConfig, cache: CachePolicy | bool
) -> ModelOutput:
    """One model call; any failure becomes a :class:`ModelCallError` naming its reason."""
    try:
        output = await model.generate(messages, config=config, cache=cache)
    except Exception as e:  # provider failures after retries: counted by the engine, item retried next run
        raise ModelCallError(f"model_error:{type(e).__name__}", " ".join(str(e).split())[:500]) from e
    if output.error:
        raise ModelCallError("model_error:provider", " ".join(str(output.error).split())[:500])
    return output


@dataclass
class StageResult:
    """What one stage did in this run, and what its files now hold."""

    stage: str
    planned: int
    kept: list[dict[str, Any]]
    dropped: Counter[str]
    skipped: int
    failed: Counter[str]


def stage_files(gen: Generation, stage: str) -> tuple[Path, Path]:
    """The kept and dropped append-only files of a stage."""
    return gen.work_dir / f"{stage}.jsonl", gen.work_dir / f"{stage}.drops.jsonl"


def item_provenance(
    gen: Generation, item: WorkItem, stage: str, sampling: Sampling, filters: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    return provenance(
        generator=gen.generator,
        stage=stage,
        index=item.index,
        constitution_sha256=gen.constitution_sha256,
        principle_ids=item.principle_ids,
        generator_model=gen.model_name,
        prompt_file=item.prompt.file,
        prompt_sha256=item.prompt.sha256,
        sampling=sampling.as_dict(),
        seed=item.seed,
        parent_ids=item.parent_ids,
        filters=filters,
    )


async def run_stage(
    gen: Generation,
    stage: str,
    items: Sequence[WorkItem],
    handler: Handler,
    *,
    sampling: Sampling,
    kind: str | None = None,
    on_truncated: Handler | None = None,
) -> StageResult:
    """Run every unfinished item of a stage; return the stage's kept records (old and new) in plan order.

    Args:
        gen: the run's settings.
        stage: the stage name; its files are ``.work/<stage>.jsonl`` and ``.work/<stage>.drops.jsonl``.
        items: the stage's plan. Ids must be unique and stable across runs.
        handler: checks one completion and returns :class:`Keep` or :class:`Drop`.
        sampling: the stage's sampling settings.
        kind: the kind of the stage's records (default: the generator's kind).
        on_truncated: for stages whose output stays usable when cut off (a list whose last item is
            discarded), the handler for truncated outputs; by default they are dropped as ``truncated``.
    """
    kind = kind or gen.kind
    kept_path, drops_path = stage_files(gen, stage)
    failed: Counter[str] = Counter()
    dropped: Counter[str] = Counter()
    with JsonlAppender(kept_path) as kept_file, JsonlAppender(drops_path) as drops_file:
        todo = [item for item in items if item.id not in kept_file and item.id not in drops_file]
        skipped = len(items) - len(todo)
        semaphore = asyncio.Semaphore(gen.max_connections)
        done = skipped
        if gen.progress:
            gen.progress(stage, done, len(items))

        async def one(item: WorkItem) -> None:
            nonlocal done
            async with semaphore:
                try:
                    outcome = await _attempt(gen, item, handler, sampling, on_truncated)
                except ModelCallError as e:
                    failed[e.reason] += 1
                    gen.model_errors[f"{stage}:{e.reason}"] += 1
                    return
            if isinstance(outcome[0], Keep):
                keep = outcome[0]
                prov = item_provenance(gen, item, stage, sampling, keep.filters)
                record: dict[str, Any] = {"id": item.id, "kind": kind}
                if keep.text is not None:
                    record["text"] = keep.text
                else:
                    record["messages"] = [dict(m) for m in keep.messages or ()]
                record["meta"] = {**item.meta, **keep.meta}
                record["provenance"] = prov
                kept_file.append(record)
            else:
                drop = outcome[0]
                dropped[drop.reason] += 1
                prov = item_provenance(gen, item, stage, sampling, drop.filters)
                drops_file.append(
                    drop_record(
                        item_id=item.id,
                        kind=kind,
                        stage=stage,
                        reason=drop.reason,
                        detail=drop.detail,
                        output=outcome[1],
                        provenance=prov,
                    )
                )
            done += 1
            if gen.progress:
                gen.progress(stage, done, len(items))

        await asyncio.gather(*(one(item) for item in todo))
    order = {item.id: item.index for item in items}
    kept = [r for r in iter_jsonl(kept_path) if r["id"] in order] if kept_path.exists() else []
    kept.sort(key=lambda r: order[r["id"]])
    return StageResult(stage, len(items), kept, dropped, skipped, failed)


async def _attempt(
    gen: Generation, item: WorkItem, handler: Handler, sampling: Sampling, on_truncated: Handler | None
) -> tuple[Keep | Drop, str]:
    messages = chat_input(item.prompt)
    if gen.prompt_token_limit is not None and gen.count_prompt_tokens is not None:
        prompt_tokens = gen.count_prompt_tokens(
            "\n".join(filter(None, [item.prompt.system, item.prompt.user]))
        )
        if prompt_tokens + sampling.max_tokens > gen.prompt_token_limit:
            detail = (
                f"{prompt_tokens} prompt tokens + {sampling.max_tokens} max_tokens exceed the model's "
                f"context of {gen.prompt_token_limit}"
            )
            return Drop("prompt_too_long", detail), ""
    assert gen.model is not None, "a generator that calls no model runs no model stage"
    output = await call_model(
        gen.model, messages, gen.generate_config(sampling, item.seed), gen.cache_policy()
    )
    completion = output.completion
    stop = unusable_stop(output, sampling.max_tokens)
    if stop in ("content_filter", "model_length"):
        return Drop(str(stop), f"the model stopped with {stop}"), completion
    if stop == "truncated":
        if on_truncated is not None and completion.strip():
            return await on_truncated(item, completion), completion
        trimmed = trim_to_sentence(completion) if gen.trim_truncated else None
        if trimmed is None:
            return Drop("truncated", f"stopped at max_tokens={sampling.max_tokens}"), completion
        outcome = await handler(item, trimmed)
        if isinstance(outcome, Keep):
            note = verdict(
                True, reason=f"cut off at max_tokens={sampling.max_tokens}; trimmed to a full sentence"
            )
            outcome = replace(outcome, filters={**outcome.filters, "truncation": note})
        return outcome, completion
    if not completion.strip():
        return Drop("empty"), completion
    return await handler(item, completion), completion


def trim_to_sentence(text: str, *, min_fraction: float = 0.5) -> str | None:
    """``text`` up to its last complete sentence, or ``None`` when that would lose more than half of it."""
    ends = [m.end() for m in re.finditer(r"[.!?][\"')\]]?(?=\s|$)", text)]
    if not ends or ends[-1] < min_fraction * len(text.rstrip()):
        return None
    return text[: ends[-1]].strip()


def read_drops(out_dir: Path) -> list[dict[str, Any]]:
    """Every drop recorded under a generator's output folder (all stages), in file order."""
    work = out_dir / WORK_DIR
    drops: list[dict[str, Any]] = []
    for path in sorted(work.glob("*.drops.jsonl")) if work.exists() else []:
        drops.extend(iter_jsonl(path))
    return drops
