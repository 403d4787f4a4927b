"""Augmentation: unused tool definitions and diverse operator system prompts added to chat records.

A pure, seeded transformation (no model calls). For each chat record of the input, two independent draws
from a generator seeded by ``(seed, record id)`` decide whether it gets

- **tool definitions** (probability ``tool_rate``): 1 to ``max_tools`` tools from
  ``prompts/augment/tools.yaml`` whose names never occur in the conversation, listed in the system message in
  the text tool-call format (``prompts/augment/tools_section.md``); the user and assistant turns are
  unchanged, so the tools are never used;
- **an operator system prompt** (probability ``system_prompt_rate``): an operator persona
  (``operators.yaml``) filled with a product and its audience (``products.yaml``), plus a response format
  (``formats.yaml``). A record that already has a system message keeps it (``had_system_prompt``).

Every chat record of the input comes out once (augmented or not), with a new id, kind ``augmented``, the
original as ``provenance.parent_ids`` and ``meta`` saying what was added. Text records are skipped, counted.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from teachwhy.config import AugmentSource, ExperimentConfig
from teachwhy.constitution import Constitution
from teachwhy.data.engine import Progress
from teachwhy.data.output import DROPS, SUMMARY, GenerationReport, output_path
from teachwhy.data.records import drop_record, principle_ids_of, record_content, sampling_dict, verdict
from teachwhy.data.rewrite import load_chat_records
from teachwhy.data.tokens import TokenCounter
from teachwhy.errors import UserError
from teachwhy.prompts import load_pool, load_prompt, pool_sha256
from teachwhy.storage import atomic_write_json, content_hash, write_jsonl

GENERATOR = "augment"
KIND = "augmented"
POOLS = ("augment/operators", "augment/products", "augment/formats", "augment/tools")


def operator_prompts() -> list[tuple[str, str]]:
    """Every ``(id, text)`` operator system prompt of the pools (persona x product x format)."""
    prompts = []
    for op in load_pool("augment/operators"):
        for k, product in enumerate(load_pool("augment/products")):
            for f, fmt in enumerate(load_pool("augment/formats")):
                text = str(op["text"]).format(product=product["product"], audience=product["audience"])
                prompts.append((f"{op['id']}-{k}-{f}", " ".join(f"{text} {fmt}".split())))
    return prompts


def tool_listing(tools: Sequence[Mapping[str, Any]]) -> str:
    """The tools as the system-message section of the text tool-call format."""
    lines = []
    for tool in tools:
        args = ", ".join(f'"{name}": <{desc}>' for name, desc in dict(tool.get("args") or {}).items())
        lines.append(f"- {tool['name']}: {tool['description']} Arguments: {{{args}}}")
    return load_prompt("augment/tools_section").render(tools="\n".join(lines)).user


def unused_tools(record: Mapping[str, Any], tools: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The tools whose names never occur anywhere in the record's conversation."""
    text = record_content(record).lower()
    return [t for t in tools if str(t["name"]).lower() not in text]


def augment_record(
    record: Mapping[str, Any],
    *,
    index: int,
    source: AugmentSource,
    seed: int,
    prompts: Sequence[tuple[str, str]],
    tools: Sequence[Mapping[str, Any]],
    pools_sha256: str,
) -> dict[str, Any]:
    """One record, augmented according to its seeded draws (see the module docstring)."""
    rng = random.Random(f"{seed}:{record['id']}")
    want_tools = rng.random() < source.tool_rate
    want_system = rng.random() < source.system_prompt_rate
    messages = [{"role": str(m["role"]), "content": str(m["content"])} for m in record["messages"]]
    has_system = bool(messages) and messages[0]["role"] == "system"
    system_id = None
    if want_system and not has_system:
        system_id, text = prompts[rng.randrange(len(prompts))]
        messages.insert(0, {"role": "system", "content": text})
    added: list[str] = []
    candidates = unused_tools(record, tools)
    if want_tools and candidates:
        chosen = rng.sample(list(candidates), min(len(candidates), rng.randint(1, source.max_tools)))
        added = [str(t["name"]) for t in chosen]
        section = tool_listing(chosen)
        if messages and messages[0]["role"] == "system":
            messages[0] = {"role": "system", "content": f"{messages[0]['content']}\n\n{section}"}
        else:
            messages.insert(0, {"role": "system", "content": section})
    parent = dict(record.get("provenance") or {})
    what = (
        ", ".join(
            filter(
                None,
                [
                    f"tools: {', '.join(added)}" if added else "",
                    f"system prompt {system_id}" if system_id else "",
                ],
            )
        )
        or "unchanged"
    )
    prov = {
        **parent,
        "generator": GENERATOR,
        "stage": GENERATOR,
        "index": index,
        "generator_model": "none (transformation)",
        "prompt_file": ", ".join(f"teachwhy/prompts/{p}.yaml" for p in POOLS),
        "prompt_sha256": pools_sha256,
        "sampling": sampling_dict(temperature=None, top_p=None, max_tokens=None),
        "seed": seed,
        "parent_ids": [str(record["id"])],
        "filters": {**dict(parent.get("filters") or {}), "augment": verdict(True, reason=what)},
    }
    return {
        "id": content_hash(GENERATOR, record["id"], messages),
        "kind": KIND,
        "messages": messages,
        "meta": {
            "source_kind": record.get("kind"),
            "tools_added": added,
            "system_prompt": system_id,
            "had_system_prompt": has_system and want_system,
        },
        "provenance": prov,
    }


def generate_augment(
    config: ExperimentConfig,
    source: AugmentSource,
    constitution: Constitution,
    out_dir: Path,
    *,
    records: Sequence[Mapping[str, Any]] | None = None,
    input_path: Path | None = None,
    counter: TokenCounter | None = None,
    progress: Progress | None = None,
) -> GenerationReport:
    """Augment a chat dataset into ``out_dir/augment.jsonl`` (deterministic for a seed; re-runs rewrite it).

    Args:
        config: the experiment (for the default seed).
        source: the augmentation settings (rates, ``max_tools``, ``count`` cap, seed).
        constitution: for the coverage table of the summary.
        out_dir: the output folder.
        records: the input records; or
        input_path: a JSONL file to read them from.
        counter: the target tokenizer for token counts (``None``: no counts).
        progress: called as records finish.

    Raises:
        UserError: neither or both of ``records`` and ``input_path`` are given, or the input is malformed.
    """
    if (records is None) == (input_path is None):
        raise UserError("give the augmentation either records or an input file", key="augment.source")
    inputs = list(records) if records is not None else load_chat_records(Path(str(input_path)))
    seed = config.generation.seed if source.seed is None else source.seed
    prompts = operator_prompts()
    tools = [dict(t) for t in load_pool("augment/tools")]
    pools_sha256 = content_hash(*[pool_sha256(p) for p in POOLS])
    chat = [r for r in inputs if isinstance(r.get("messages"), list)][: source.count]
    skipped = [r for r in inputs if not isinstance(r.get("messages"), list)]
    out: list[dict[str, Any]] = []
    for index, record in enumerate(chat):
        augmented = augment_record(
            record,
            index=index,
            source=source,
            seed=seed,
            prompts=prompts,
            tools=tools,
            pools_sha256=pools_sha256,
        )
        if counter is not None:
            counter.stamp(augmented)  # no "tokens" copied from the parent: the count changes with the prompt
        out.append(augmented)
        if progress:
            progress(GENERATOR, index + 1, len(chat))
    out_dir.mkdir(parents=True, exist_ok=True)
    out_file = output_path(out_dir, GENERATOR)
    write_jsonl(out_file, out)
    drops = [
        drop_record(
            item_id=str(r["id"]),
            kind=str(r.get("kind")),
            stage=GENERATOR,
            reason="not_chat",
            detail="a text record has no conversation to augment",
            output=None,
            provenance=dict(r.get("provenance") or {}),
        )
        for r in skipped
    ]
    write_jsonl(out_dir / DROPS, drops)
    coverage = principle_ids_of(out)
    report = GenerationReport(
        generator=GENERATOR,
        kind=KIND,
        out_file=str(out_file),
        requested=len(chat),
        kept=len(out),
        unfinished=0,
        drops={"not_chat": len(drops)} if drops else {},
        model_errors={},
        tokens=sum(int(r["tokens"]["count"]) for r in out if "tokens" in r),
        tokenizer=counter.name if counter else None,
        tokens_exact=counter.exact if counter else None,
        coverage={p.id: coverage.get(p.id, 0) for p in constitution.principles},
        uncovered=[p.id for p in constitution.principles if not coverage.get(p.id)],
        stages={
            GENERATOR: {
                "records": len(out),
                "with_tools": sum(1 for r in out if r["meta"]["tools_added"]),
                "with_system_prompt": sum(1 for r in out if r["meta"]["system_prompt"]),
                "had_system_prompt": sum(1 for r in out if r["meta"]["had_system_prompt"]),
                "unchanged": sum(
                    1 for r in out if not r["meta"]["tools_added"] and not r["meta"]["system_prompt"]
                ),
            }
        },
    )
    atomic_write_json(out_dir / SUMMARY, report.to_dict())
    return report
