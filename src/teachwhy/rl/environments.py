"""The prompts RL trains on: harmlessness environments shipped as data files, the user's own, augmentation.

Shipped environments live in ``teachwhy/rl/environments/*.yaml`` (harmful requests, jailbreak attempts,
ethically loaded requests); each item has an ``id``, the user's ``prompt`` and the ``principles`` (ids of the
example constitution) the judge scores it against. The user's own prompts come from JSONL files or Hugging
Face dataset folders (``save_to_disk``) with a ``prompt`` column (a string or a list of messages) or a
``messages`` column (a conversation; anything after its last user turn is dropped, so SFT data can be reused);
optional ``id`` and ``principles`` columns are kept.

Augmentation reuses the SFT data's (:func:`teachwhy.data.augment.augment_record`): with probability
``tool_rate`` a prompt gets unused tool definitions, with probability ``system_prompt_rate`` an operator
system prompt, seeded per prompt id; the user turn is never changed.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from teachwhy.errors import UserError
from teachwhy.resources import resource_files, resource_path
from teachwhy.storage import content_hash

_ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class RlPrompt:
    """One RL prompt: the conversation the policy answers, and what the judge scores it against.

    Attributes:
        id: stable id (the file's, or a content hash).
        environment: the environment it comes from (a shipped file's name, or the user's file).
        messages: the conversation up to and including the user's last turn.
        principles: principle ids to score; empty means the configured default.
        tools_added: unused tool names augmentation added to the system message.
        system_prompt: the operator system prompt augmentation added (its pool id), if any.
    """

    id: str
    environment: str
    messages: tuple[dict[str, str], ...]
    principles: tuple[str, ...] = ()
    tools_added: tuple[str, ...] = field(default=())
    system_prompt: str | None = None

    @property
    def augmented(self) -> bool:
        return bool(self.tools_added or self.system_prompt)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "environment": self.environment,
            "messages": list(self.messages),
            "principles": list(self.principles),
            "tools_added": list(self.tools_added),
            "system_prompt": self.system_prompt,
        }


def builtin_environments() -> list[str]:
    """The names of the shipped environments."""
    return [p.stem for p in resource_files("rl", "environments/*.yaml")]


def load_builtin_prompts(names: Sequence[str] | None = None) -> list[RlPrompt]:
    """The shipped prompts (every environment, or those in ``names``), in file order."""
    prompts: list[RlPrompt] = []
    for name in names or builtin_environments():
        path = resource_path("rl", f"environments/{name}.yaml")
        if not path.is_file():
            raise UserError(f"no shipped RL environment '{name}' ({', '.join(builtin_environments())})")
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        items = data.get("items") if isinstance(data, dict) else None
        if not isinstance(items, list) or not items:
            raise UserError("must hold a non-empty list", file=path, key="items")
        for index, item in enumerate(items):
            prompts.append(_row_prompt(item, file=path, where=f"items[{index}]", environment=name))
    return prompts


def load_prompt_file(path: Path, *, key: str = "rl.prompt_files") -> list[RlPrompt]:
    """The user's prompts from a JSONL file or a Hugging Face dataset folder.

    Raises:
        UserError: the file is missing or empty, or a row has neither a usable ``prompt`` nor ``messages``.
    """
    if not path.exists():
        raise UserError("prompt file not found", file=path, key=key)
    rows: Iterable[tuple[str, Any]]
    if path.is_dir():
        rows = ((f"row {i}", row) for i, row in enumerate(_dataset_rows(path, key=key)))
    else:
        rows = _jsonl_rows(path)
    prompts = [_row_prompt(row, file=path, where=where, environment=path.stem) for where, row in rows]
    if not prompts:
        raise UserError("holds no prompts", file=path, key=key)
    return prompts


def _jsonl_rows(path: Path) -> Iterable[tuple[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield f"line {number}", json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(f"not valid JSON ({e.msg})", file=path, key=f"line {number}") from None


def _dataset_rows(path: Path, *, key: str) -> list[dict[str, Any]]:
    from datasets import Dataset, DatasetDict, load_from_disk

    try:
        loaded = load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as e:
        raise UserError(f"not a saved Hugging Face dataset ({e})", file=path, key=key) from None
    if isinstance(loaded, DatasetDict):
        splits = list(loaded)
        if "train" in loaded:
            loaded = loaded["train"]
        elif len(splits) == 1:
            loaded = loaded[splits[0]]
        else:
            raise UserError(
                f"has several splits ({', '.join(splits)}) and none is 'train'", file=path, key=key
            )
    assert isinstance(loaded, Dataset)
    return [dict(row) for row in loaded]


def _row_prompt(row: Any, *, file: Path, where: str, environment: str) -> RlPrompt:
    def fail(message: str) -> UserError:
        return UserError(message, file=file, key=where)

    if not isinstance(row, dict):
        raise fail("each row must be an object")
    raw = row.get("prompt", row.get("messages"))
    if isinstance(raw, str):
        if not raw.strip():
            raise fail("the prompt is empty")
        messages: list[dict[str, str]] = [{"role": "user", "content": raw}]
    elif isinstance(raw, list) and raw:
        messages = []
        for m in raw:
            if (
                not isinstance(m, dict)
                or m.get("role") not in _ROLES
                or not isinstance(m.get("content"), str)
            ):
                raise fail(f"each message needs a role ({', '.join(_ROLES)}) and string content")
            messages.append({"role": str(m["role"]), "content": str(m["content"])})
        last_user = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=None)
        if last_user is None:
            raise fail("the conversation has no user turn to answer")
        messages = messages[: last_user + 1]
    else:
        raise fail("needs a 'prompt' (text or messages) or a 'messages' column")
    principles = row.get("principles") or []
    if not isinstance(principles, list) or not all(isinstance(p, str) for p in principles):
        raise fail("principles must be a list of principle ids")
    prompt_id = row.get("id")
    return RlPrompt(
        id=str(prompt_id) if prompt_id not in (None, "") else content_hash(environment, messages),
        environment=environment,
        messages=tuple(messages),
        principles=tuple(principles),
    )


def augment_prompts(
    prompts: Sequence[RlPrompt], *, tool_rate: float, system_prompt_rate: float, max_tools: int, seed: int
) -> list[RlPrompt]:
    """Each prompt with unused tools and/or an operator system prompt, drawn at the given rates."""
    if tool_rate == 0 and system_prompt_rate == 0:
        return list(prompts)
    from teachwhy.config import AugmentSource
    from teachwhy.data.augment import POOLS, augment_record, operator_prompts
    from teachwhy.prompts import load_pool, pool_sha256

    source = AugmentSource(tool_rate=tool_rate, system_prompt_rate=system_prompt_rate, max_tools=max_tools)
    operators = operator_prompts()
    tools = [dict(t) for t in load_pool("augment/tools")]
    pools_sha256 = content_hash(*[pool_sha256(p) for p in POOLS])
    out = []
    for index, prompt in enumerate(prompts):
        record = {"id": prompt.id, "kind": "rl_prompt", "messages": list(prompt.messages)}
        augmented = augment_record(
            record,
            index=index,
            source=source,
            seed=seed,
            prompts=operators,
            tools=tools,
            pools_sha256=pools_sha256,
        )
        meta = augmented["meta"]
        out.append(
            replace(
                prompt,
                messages=tuple(augmented["messages"]),
                tools_added=tuple(meta["tools_added"]),
                system_prompt=meta["system_prompt"],
            )
        )
    return out


def select_prompts(prompts: Sequence[RlPrompt], *, limit: int | None, seed: int) -> list[RlPrompt]:
    """At most ``limit`` prompts, a seeded sample that keeps file order; repeated ids are an error."""
    seen: dict[str, RlPrompt] = {}
    for prompt in prompts:
        if prompt.id in seen:
            raise UserError(
                f"prompt id '{prompt.id}' occurs twice "
                f"({seen[prompt.id].environment} and {prompt.environment})",
                key="rl.prompt_files",
            )
        seen[prompt.id] = prompt
    if limit is None or limit >= len(prompts):
        return list(prompts)
    keep = set(random.Random(seed).sample(range(len(prompts)), limit))
    return [p for i, p in enumerate(prompts) if i in keep]
