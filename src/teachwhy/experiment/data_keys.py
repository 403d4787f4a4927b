"""Which data files each stage reads, so its key hashes exactly those (the package's or an overlay's).

A stage's key includes :func:`stage_data_hash` of its entry below: editing a world re-runs the evaluations,
the controls, the OOD distances and the honeypot demonstrations (whose split guard reads the held-out worlds),
not the documents; editing ``prompts/documents_write.md`` re-runs the documents generator only. Each entry is
a list of ``(area, pattern)`` pairs over :data:`teachwhy.resources.AREAS`. A finished stage records the files
it actually read (``__data_files__`` in its ``result.json``); the tests check those are declared here.
"""

from __future__ import annotations

from pathlib import Path

from teachwhy.resources import resolved_files, resources_hash

Patterns = tuple[tuple[str, str], ...]

# the text filters' refusal openings and the judge filter's rubric (teachwhy.data.quality)
QUALITY: Patterns = (("prompts", "checks_refusals.yaml"), ("prompts", "judge_rubric.md"))
# what playing and classifying a honeypot episode reads: worlds and the condition factorial, the families'
# rubrics, the agent's notices, text-tool instructions and the judge's answer format
HONEYPOT: Patterns = (("scenarios", "**/*"), ("rubrics", "*"), ("eval_prompts", "*"))

STAGE_DATA: dict[str, Patterns] = {
    "generate.documents": (
        ("prompts", "documents_*.md"),
        ("prompts", "pool_document_types.yaml"),
        *QUALITY,
    ),
    "generate.stories": (("prompts", "stories_*.md"), ("prompts", "pool_story_*.yaml"), *QUALITY),
    "generate.advice": (("prompts", "advice/*"), *QUALITY),
    # (the controls: `played_by: aligned_policies` plays the aligned scripted policies)
    "generate.honeypot_demos": (*HONEYPOT, ("honeypot_templates", "*"), ("controls", "*"), *QUALITY),
    "generate.rewrite": (("prompts", "rewrite/*"), *QUALITY, ("eval_prompts", "text_tools.md")),
    "generate.augment": (("prompts", "augment/*"),),
    "generate.imported": (),
    "organism": (*HONEYPOT, ("controls", "*"), ("honeypot_templates", "*")),
    "controls": (*HONEYPOT, ("controls", "*")),
    "eval": HONEYPOT,
    "ood": (("scenarios", "**/*"),),
    "rl": (("rl", "environments/*.yaml"), ("rl", "rubric.md"), ("prompts", "augment/*")),
}


def stage_data_hash(stage: str) -> str:
    """The hash of the data files ``stage`` reads, resolved through the overlay in effect.

    Raises:
        KeyError: no entry for ``stage`` (a new stage must declare what it reads).
    """
    return resources_hash(STAGE_DATA[stage])


def declared_files(stage: str) -> dict[str, Path]:
    """The files ``stage`` is declared to read (``area/path`` -> file), resolved through the overlay in
    effect; a stage kind without an entry (mix, train) reads none."""
    return resolved_files(STAGE_DATA.get(stage, ()))
