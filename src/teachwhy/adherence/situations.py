"""Held-out adherence situations: generated once per constitution with the generator, then frozen.

For every principle, ``situations_per_principle`` messages in which acting on the principle matters. They are
written to ``<folder>/situations-<key>.jsonl`` with a manifest ``situations-<key>.json`` (provenance and the
content hash of the JSONL file). The key hashes the constitution, the count and the prompt files, so:

- a second run finds the file and does not call the generator again (it only checks the content hash: a
  frozen file that was edited is an error, not silently used);
- a changed constitution gets its own new set beside the old one.

Each record carries ``"heldout": "adherence"``; data generation and training refuse records with a
``heldout`` key (:func:`teachwhy.data.records.validate_record`), so the set can never become training data.
A situation the generator fails to produce (error, cut off, no ``SITUATION:`` line) is retried with another
seed; if it still fails, nothing is frozen and the error says how many failed and why.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from inspect_ai.model import ChatMessage, ChatMessageSystem, ChatMessageUser, GenerateConfig, Model

from teachwhy.constitution import Constitution, Principle
from teachwhy.errors import UserError
from teachwhy.prompts import load_prompt
from teachwhy.resources import package_dir, resource_path
from teachwhy.storage import atomic_write_json, atomic_write_text, content_hash

PROMPTS = package_dir("adherence_prompts")
AREA = "adherence_prompts"  # the resource area of these prompts (teachwhy.resources)
HELDOUT = "adherence"
KIND = "adherence_situation"
ATTEMPTS = 3
_MARKER = "SITUATION:"


class SituationsIncomplete(RuntimeError):
    """Some situations could not be generated; nothing was frozen (run again to retry)."""


@dataclass(frozen=True)
class Situation:
    """One held-out situation for one principle."""

    id: str
    principle_id: str
    section: str
    title: str
    principle: str
    situation: str
    provenance: dict[str, Any]

    def to_record(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": KIND,
            "heldout": HELDOUT,
            "principle_id": self.principle_id,
            "section": self.section,
            "title": self.title,
            "principle": self.principle,
            "situation": self.situation,
            "provenance": self.provenance,
        }

    @classmethod
    def from_record(cls, r: dict[str, Any]) -> Situation:
        return cls(
            r["id"],
            r["principle_id"],
            r["section"],
            r["title"],
            r["principle"],
            r["situation"],
            r["provenance"],
        )


def _settings_file() -> Path:
    return resource_path(AREA, "settings.yaml")


def _settings() -> list[str]:
    path = _settings_file()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise UserError(f"not valid YAML ({getattr(e, 'problem', e)})", file=path) from None
    items = data.get("items") if isinstance(data, dict) else None
    if not isinstance(items, list) or not items:
        raise UserError("must hold a non-empty list", file=path, key="items")
    return [str(i) for i in items]


def situations_key(
    constitution: Constitution, per_principle: int, principles: Sequence[str] | None = None
) -> str:
    """What identifies a frozen set: the constitution, the principles chosen (all when ``None``), the count,
    the prompt and the settings pool."""
    prompt = load_prompt("situation", area=AREA)
    pool = content_hash(_settings_file().read_bytes())
    chosen = sorted(principles) if principles else None
    return content_hash(constitution.sha256, chosen, per_principle, prompt.sha256, pool, length=12)


def chosen_principles(constitution: Constitution, principles: Sequence[str] | None) -> list[Principle]:
    """The principles to write situations for, in constitution order (every one when ``None``).

    Raises:
        UserError: an id is not a principle of the constitution.
    """
    if not principles:
        return list(constitution.principles)
    for ident in principles:
        constitution.get(ident)  # an unknown id is a UserError that suggests close matches
    return [p for p in constitution.principles if p.id in set(principles)]


def frozen_paths(folder: Path, key: str) -> tuple[Path, Path]:
    """The JSONL file and its manifest."""
    return folder / f"situations-{key}.jsonl", folder / f"situations-{key}.json"


def parse_situation(text: str) -> str | None:
    """The message after the last ``SITUATION:`` marker, or ``None``."""
    at = text.rfind(_MARKER)
    if at < 0:
        return None
    body = text[at + len(_MARKER) :].strip().strip('"').strip()
    return body or None


async def _one(
    generator: Model, principle: Principle, n: int, setting: str, config: GenerateConfig, seed: int
) -> tuple[str | None, str, dict[str, Any]]:
    rendered = load_prompt("situation", area=AREA).render(
        section=principle.section, title=principle.title, principle=principle.text, setting=setting
    )
    messages: list[ChatMessage] = [ChatMessageUser(content=rendered.user)]
    if rendered.system:
        messages.insert(0, ChatMessageSystem(content=rendered.system))
    problem = ""
    for attempt in range(ATTEMPTS):
        attempt_seed = seed + 1000 * attempt
        try:
            output = await generator.generate(
                messages, config=config.merge(GenerateConfig(seed=attempt_seed))
            )
        except Exception as e:  # a failed call is retried, then reported; never frozen
            problem = f"model call failed: {type(e).__name__}"
            continue
        if output.error:
            problem = "model call failed"
            continue
        if output.stop_reason in ("max_tokens", "model_length", "content_filter"):
            problem = f"cut off ({output.stop_reason})"
            continue
        text = parse_situation(output.completion)
        if text is None:
            problem = "no SITUATION: line"
            continue
        provenance = {
            "prompt_file": rendered.file,
            "prompt_sha256": rendered.sha256,
            "setting": setting,
            "seed": attempt_seed,
            "attempts": attempt + 1,
        }
        return text, "", provenance
    return None, problem, {}


async def generate_situations(
    constitution: Constitution,
    generator: Model,
    *,
    per_principle: int,
    principles: Sequence[str] | None = None,
    max_tokens: int = 300,
    temperature: float = 0.9,
    seed: int = 0,
    max_connections: int = 8,
) -> list[Situation]:
    """Generate every principle's situations (not frozen: see :func:`freeze_situations`).

    Raises:
        SituationsIncomplete: some situations failed after all attempts.
    """
    settings = _settings()
    config = GenerateConfig(max_tokens=max_tokens, temperature=temperature)
    limit = asyncio.Semaphore(max_connections)
    slots = [(p, n) for p in chosen_principles(constitution, principles) for n in range(per_principle)]

    async def run(p: Principle, n: int) -> tuple[str | None, str, dict[str, Any]]:
        async with limit:
            return await _one(generator, p, n, settings[n % len(settings)], config, seed + 7919 * n)

    results = await asyncio.gather(*(run(p, n) for p, n in slots))
    failures = Counter(problem for text, problem, _ in results if text is None)
    if failures:
        detail = ", ".join(f"{why}: {k}" for why, k in failures.most_common())
        raise SituationsIncomplete(
            f"{sum(failures.values())} of {len(slots)} adherence situations could not be generated "
            f"({detail}); nothing was frozen, run again to retry"
        )
    created = datetime.now(UTC).isoformat(timespec="seconds")
    out = []
    for (p, n), (text, _, prov) in zip(slots, results, strict=True):
        assert text is not None
        prov = {
            **prov,
            "constitution_sha256": constitution.sha256,
            "generator": str(generator),
            "created": created,
        }
        out.append(Situation(f"{p.id}#{n + 1}", p.id, p.section, p.title, p.text, text, prov))
    return out


def load_frozen(path: Path) -> list[Situation]:
    """Read a frozen set, checking its manifest's content hash.

    Raises:
        UserError: the file or its manifest is missing or malformed, or the file was edited after freezing.
    """
    manifest_path = path.with_suffix(".json")
    if not path.exists():
        raise UserError("frozen adherence situations not found", file=path)
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError("the manifest of the frozen situations is missing", file=manifest_path) from None
    except json.JSONDecodeError as e:
        raise UserError(f"not valid JSON ({e.msg})", file=manifest_path) from None
    data = path.read_bytes()
    if content_hash(data) != manifest.get("content_sha256"):
        raise UserError(
            "the frozen situations were changed after freezing (content hash differs from the manifest); "
            "restore the file, or delete it and its manifest to generate a new set",
            file=path,
        )
    try:
        return [Situation.from_record(json.loads(line)) for line in data.decode("utf-8").splitlines() if line]
    except (KeyError, json.JSONDecodeError) as e:
        raise UserError(f"not a situations file ({e})", file=path) from None


def write_frozen(
    path: Path, situations: Sequence[Situation], *, key: str, constitution: Constitution
) -> None:
    """Write the set and then its manifest (the manifest last: a set without one is not frozen)."""
    text = "".join(json.dumps(s.to_record(), ensure_ascii=False) + "\n" for s in situations)
    atomic_write_text(path, text)
    atomic_write_json(
        path.with_suffix(".json"),
        {
            "kind": "adherence_situations",
            "heldout": HELDOUT,
            "key": key,
            "content_sha256": content_hash(text.encode("utf-8")),
            "situations": len(situations),
            "principles": len({s.principle_id for s in situations}),
            "constitution_path": str(constitution.path) if constitution.path else None,
            "constitution_sha256": constitution.sha256,
            "generator": situations[0].provenance.get("generator") if situations else None,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    )


def freeze_situations(
    constitution: Constitution,
    folder: Path,
    generator: Model | Callable[[], Model] | None,
    *,
    per_principle: int,
    principles: Sequence[str] | None = None,
    max_tokens: int = 300,
    seed: int = 0,
    max_connections: int = 8,
) -> tuple[Path, list[Situation], bool]:
    """The frozen set for this constitution: loaded when it exists, generated and frozen otherwise.

    Args:
        generator: the model that writes the situations, or a function that makes it (only called when
            nothing is frozen yet, so a frozen set needs no generator at all).

    Returns:
        The JSONL path, the situations, and whether they were generated now.

    Raises:
        UserError: no frozen set exists and no generator was given, or a frozen file is damaged.
        SituationsIncomplete: generation failed for some situations.
    """
    chosen_principles(constitution, principles)  # unknown ids fail before anything is generated
    key = situations_key(constitution, per_principle, principles)
    path, manifest = frozen_paths(folder, key)
    if path.exists() and manifest.exists():
        return path, load_frozen(path), False
    if generator is None:
        raise UserError("no frozen adherence situations for this constitution yet", file=path)
    model = generator if isinstance(generator, Model) else generator()
    situations = asyncio.run(
        generate_situations(
            constitution,
            model,
            per_principle=per_principle,
            principles=principles,
            max_tokens=max_tokens,
            seed=seed,
            max_connections=max_connections,
        )
    )
    write_frozen(path, situations, key=key, constitution=constitution)
    return path, situations, True
