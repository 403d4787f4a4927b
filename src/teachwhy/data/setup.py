"""Build a generator run's settings (models, sampling, judge, dedup) from the experiment config."""

from __future__ import annotations

from pathlib import Path

from inspect_ai.model import Model

from teachwhy.config import ExperimentConfig, SourceBase
from teachwhy.constitution import Constitution
from teachwhy.data.engine import Generation, Progress, Sampling
from teachwhy.data.output import DedupSettings
from teachwhy.data.quality import JudgeFilter
from teachwhy.data.tokens import counter_for_role


def source_sampling(config: ExperimentConfig, source: SourceBase) -> Sampling:
    """The source's temperature and max_tokens, falling back to the generation defaults."""
    gen = config.generation
    return Sampling(
        temperature=gen.temperature if source.temperature is None else source.temperature,
        top_p=gen.top_p,
        max_tokens=gen.max_tokens if source.max_tokens is None else source.max_tokens,
    )


def make_generation(
    config: ExperimentConfig,
    constitution: Constitution,
    *,
    generator: str,
    kind: str,
    out_dir: Path,
    sampling: Sampling,
    model: Model | None = None,
    seed: int | None = None,
    progress: Progress | None = None,
    trim_truncated: bool = False,
) -> Generation:
    """A :class:`Generation` for the configured generator role (or ``model``, e.g. a scripted one in tests).

    For a local generator (``embedded``, ``hf/…``) whose context window is known, prompts that would not fit
    with the output allowance are dropped as ``prompt_too_long`` instead of being cut by the provider.
    """
    from teachwhy.models import role_model

    role = config.models.generator
    limit = None
    count = None
    if model is None:
        model = role_model(config, "generator", temperature=sampling.temperature)
        if role.model == "embedded" or role.model.startswith("hf/"):
            counter = counter_for_role(role)
            if counter.exact and counter.context_length:
                limit, count = counter.context_length, counter.count_text
        model_name = role.model
    else:
        model_name = str(model)
    gen = config.generation
    return Generation(
        generator=generator,
        kind=kind,
        out_dir=out_dir,
        model=model,
        model_name=model_name,
        constitution_sha256=constitution.sha256,
        seed=gen.seed if seed is None else seed,
        cache=gen.cache,
        max_connections=role.max_connections or gen.max_connections,
        max_retries=gen.max_retries,
        timeout=gen.timeout,
        prompt_token_limit=limit,
        count_prompt_tokens=count,
        progress=progress,
        trim_truncated=trim_truncated,
    )


def make_judge(
    config: ExperimentConfig, source: SourceBase, *, model: Model | None = None
) -> JudgeFilter | None:
    """The judge filter, or ``None`` when the source switches it off (``judge_filter: false``)."""
    if not source.judge_filter:
        return None
    from teachwhy.models import role_model

    name = config.models.judge.model if model is None else str(model)
    model = model or role_model(config, "judge", temperature=0.0)
    return JudgeFilter(model=model, model_name=name, min_score=source.min_score)


def make_dedup(source: SourceBase) -> DedupSettings | None:
    """The dedup passes the source asks for (exact always, n-gram and embeddings as configured)."""
    if not source.dedup:
        return None
    embed = None
    if source.embedding_dedup:
        from teachwhy.data.embeddings import default_embedder

        embed = default_embedder().encode
    return DedupSettings(
        ngram_threshold=source.ngram_threshold,
        embedding_threshold=source.embedding_threshold if embed else None,
        embed=embed,
    )


def generation_key(
    config: ExperimentConfig, name: str, source: SourceBase, constitution: Constitution
) -> str:
    """A content hash of everything a generator's output depends on, for experiment-level caching.

    It covers the source settings, the generation defaults, the generator, judge and target roles (the
    target's tokenizer sets the token counts), the constitution and every prompt and pool file (an overlay
    folder's where it adds or replaces one, see :mod:`teachwhy.resources`).
    """
    from teachwhy.resources import resources_hash
    from teachwhy.storage import content_hash

    return content_hash(
        name,
        source.model_dump(mode="json"),
        config.generation.model_dump(mode="json"),
        {role: config.models.role(role).model_dump(mode="json") for role in ("generator", "judge", "target")},
        constitution.sha256,
        resources_hash([("prompts", "**/*")]),
    )
