"""Token-budgeted mixes of named sources with weights (e.g. 3M tokens: 60% advice, 40% documents).

Each source's target is its share of the budget. Sources are filled in order from a seeded shuffle of their
records; a source stops at the item that brings it closest to its target, and the rounding error is carried to
the next source, so the whole mix lands within half an item of the budget (never more than one item over).
A source that runs out is reported with its shortfall and is *not* made up from the others (that would
change the weights); with ``allow_repeat`` it is cycled again instead, and repeats are marked.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from teachwhy.config import ArmData
from teachwhy.data.records import validate_record
from teachwhy.data.tokens import TokenCounter
from teachwhy.errors import UserError
from teachwhy.storage import atomic_write_json, iter_jsonl, write_jsonl


@dataclass
class SourceShare:
    """What one source contributed to a mix."""

    name: str
    weight: float
    target_tokens: int
    achieved_tokens: int = 0
    items: int = 0
    available_items: int = 0
    available_tokens: int = 0
    repeated_items: int = 0
    exhausted: bool = False

    @property
    def shortfall_tokens(self) -> int:
        return max(0, self.target_tokens - self.achieved_tokens) if self.exhausted else 0


@dataclass
class MixReport:
    """The achieved tokens per source and in total."""

    budget_tokens: int
    total_tokens: int
    total_items: int
    sources: list[SourceShare] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "budget_tokens": self.budget_tokens,
            "total_tokens": self.total_tokens,
            "total_items": self.total_items,
            "sources": [{**asdict(s), "shortfall_tokens": s.shortfall_tokens} for s in self.sources],
        }


def record_tokens(record: Mapping[str, Any], *, counter: TokenCounter | None, where: str) -> int:
    tokens = record.get("tokens")
    counted = isinstance(tokens, dict) and isinstance(tokens.get("count"), int)
    if counted and (counter is None or tokens.get("tokenizer") == counter.name):  # type: ignore[union-attr]
        return int(tokens["count"])  # type: ignore[index]
    if counter is None:
        raise UserError("record has no token count (pass a tokenizer to count it)", key=where)
    return counter.count(record)


def build_mix(
    sources: Mapping[str, Sequence[dict[str, Any]]],
    weights: Mapping[str, float],
    budget_tokens: int,
    *,
    seed: int = 0,
    allow_repeat: bool = False,
    counter: TokenCounter | None = None,
) -> tuple[list[dict[str, Any]], MixReport]:
    """Select records from each source to fill ``budget_tokens`` in proportion to ``weights``.

    Args:
        sources: records by source name (each with ``tokens.count``, or a ``counter`` to count them).
        weights: relative weight per source (normalised here).
        budget_tokens: the total token budget.
        seed: shuffles each source's order.
        allow_repeat: cycle a source that runs out instead of falling short.
        counter: counts records without (or with other) token counts.

    Returns:
        The mixed records (each with ``mix: {source, repeat}``), sources in order, and the report.
    """
    if budget_tokens <= 0:
        raise UserError("must be > 0", key="budget")
    missing = [n for n in weights if n not in sources]
    if missing or set(sources) - set(weights):
        raise UserError(
            f"every source needs a weight and every weight a source ({', '.join(missing) or 'extra'})",
            key="weights",
        )
    total_weight = sum(weights.values())
    if total_weight <= 0 or any(w <= 0 for w in weights.values()):
        raise UserError("weights must be positive", key="weights")
    names = list(weights)
    out: list[dict[str, Any]] = []
    shares: list[SourceShare] = []
    cumulative_weight = 0.0
    carried = (
        0  # tokens placed so far, counting exhausted sources at their target (no make-up for shortfalls)
    )
    for name in names:
        cumulative_weight += weights[name]
        target_end = round(budget_tokens * cumulative_weight / total_weight)
        allowance = target_end - carried
        target = round(budget_tokens * weights[name] / total_weight)
        records = list(sources[name])
        costs = [record_tokens(r, counter=counter, where=f"{name} record {r.get('id')}") for r in records]
        share = SourceShare(
            name, weights[name], target, available_items=len(records), available_tokens=sum(costs)
        )
        order = list(range(len(records)))
        random.Random(f"{seed}:{name}").shuffle(order)
        achieved = 0
        position = 0
        repeat = 0
        while achieved < allowance:
            if position == len(order):
                if not allow_repeat or not order or sum(costs) == 0:
                    share.exhausted = True
                    break
                repeat += 1
                position = 0
            i = order[position]
            cost = costs[i]
            # stop at whichever side of the allowance is closer (ties go under)
            if achieved + cost > allowance and (achieved + cost - allowance) >= (allowance - achieved):
                break
            record = dict(records[i])
            if repeat:
                record["id"] = f"{record['id']}~r{repeat}"
                share.repeated_items += 1
            record["mix"] = {"source": name, "repeat": repeat}
            out.append(record)
            achieved += cost
            share.items += 1
            position += 1
        share.achieved_tokens = achieved
        carried += max(achieved, allowance) if share.exhausted else achieved
        shares.append(share)
    total = sum(s.achieved_tokens for s in shares)
    return out, MixReport(budget_tokens, total, len(out), shares)


def parse_source_spec(spec: str) -> tuple[str, Path, float]:
    """``name=path.jsonl:weight`` → (name, path, weight)."""
    name, eq, rest = spec.partition("=")
    path, colon, weight = rest.rpartition(":")
    if not eq or not colon or not name or not path:
        raise UserError(f"'{spec}' is not NAME=PATH:WEIGHT", key="--source")
    try:
        value = float(weight)
    except ValueError:
        raise UserError(f"weight '{weight}' is not a number", key="--source") from None
    if value <= 0:
        raise UserError(f"weight of '{name}' must be > 0", key="--source")
    return name.strip(), Path(path), value


def load_records(path: Path) -> list[dict[str, Any]]:
    """Read and validate a dataset file (each line a record)."""
    records = []
    for number, record in enumerate(iter_jsonl(path), start=1):
        validate_record(record, file=str(path), line=number)
        records.append(record)
    return records


def mix_files(
    specs: Sequence[tuple[str, Path, float]],
    budget_tokens: int,
    out: Path,
    *,
    seed: int = 0,
    allow_repeat: bool = False,
    counter: TokenCounter | None = None,
) -> MixReport:
    """Mix dataset files into ``out`` and write the report beside it (``<out stem>.report.json``)."""
    names = [name for name, _, _ in specs]
    if len(set(names)) != len(names):
        raise UserError("each source name may appear once", key="--source")
    sources = {name: load_records(path) for name, path, _ in specs}
    weights = {name: weight for name, _, weight in specs}
    records, report = build_mix(
        sources, weights, budget_tokens, seed=seed, allow_repeat=allow_repeat, counter=counter
    )
    write_jsonl(out, records)
    atomic_write_json(out.with_name(out.stem + ".report.json"), report.to_dict())
    return report


def mix_for_arm(
    data: ArmData,
    files: Mapping[str, Path],
    out: Path,
    *,
    seed: int = 0,
    counter: TokenCounter | None = None,
) -> MixReport:
    """Mix an arm's generated datasets as its config says (``budget_tokens``, ``weights``, ``allow_repeat``).

    Args:
        data: the arm's data settings.
        files: the dataset file of each of the arm's sources, by source name.
        out: the mixed file to write (the report goes beside it).
        seed: shuffles each source.
        counter: counts records that lack token counts.

    Without a budget every record of every source is used once; without weights the sources weigh the same.
    """
    weights = (
        {name: data.weights.get(name, 1.0) for name in files} if data.weights else dict.fromkeys(files, 1.0)
    )
    if data.budget_tokens is None:
        sources = {name: load_records(path) for name, path in files.items()}
        records = []
        shares = []
        for name, recs in sources.items():
            share = SourceShare(name, weights[name], 0, available_items=len(recs))
            for record in recs:
                cost = record_tokens(record, counter=counter, where=f"{name} record {record.get('id')}")
                records.append({**record, "mix": {"source": name, "repeat": 0}})
                share.items += 1
                share.achieved_tokens += cost
            share.available_tokens = share.target_tokens = share.achieved_tokens
            shares.append(share)
        total = sum(s.achieved_tokens for s in shares)
        report = MixReport(total, total, len(records), shares)
        write_jsonl(out, records)
        atomic_write_json(out.with_name(out.stem + ".report.json"), report.to_dict())
        return report
    specs = [(name, path, weights[name]) for name, path in files.items()]
    return mix_files(
        specs, data.budget_tokens, out, seed=seed, allow_repeat=data.allow_repeat, counter=counter
    )
