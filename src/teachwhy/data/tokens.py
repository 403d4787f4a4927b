"""Exact token counts with the target model's tokenizer.

The tokenizer is found from the target role's model string: ``embedded`` uses the materialised SmolLM2 folder;
``hf/<id-or-path>``, ``vllm/<id>`` and ``openai-api/<service>/<id>`` try that Hugging Face id or path from
local files (nothing is downloaded). When none can be loaded (an API model such as ``anthropic/…``), a
fallback tokenizer is used and every record says so: ``tokens.exact`` is ``false`` and ``tokens.tokenizer``
names both.

Counts are what training sees (:mod:`teachwhy.train.tokenize` uses the same functions): a document with the
special tokens the tokenizer adds plus the end-of-sequence token training appends; a conversation rendered
through the chat template with its tool definitions, then tokenized without further special tokens.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from teachwhy.config import ExperimentConfig, RoleModel
from teachwhy.errors import UserError

COUNT_METHOD = "as-trained-v2"
"""Recorded in ``tokens.method``: counts made another way (before documents included BOS/EOS and
conversations their tools) are recounted when a record is stamped again."""


@dataclass
class TokenCounter:
    """Counts tokens of records with one tokenizer.

    Attributes:
        name: what goes into ``tokens.tokenizer``.
        exact: whether it is the target model's own tokenizer.
        tokenizer: a Hugging Face tokenizer.
        context_length: the model's context window, when its config says.
    """

    name: str
    exact: bool
    tokenizer: Any
    context_length: int | None = None

    def count_text(self, text: str) -> int:
        """Tokens of bare text (a prompt), without special tokens."""
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def count_document(self, text: str) -> int:
        """Tokens a document trains on: see :func:`document_token_ids`."""
        return len(document_token_ids(text, self.tokenizer))

    def count_messages(
        self, messages: Sequence[Mapping[str, str]], tools: Sequence[Mapping[str, Any]] | None = None
    ) -> int:
        """Tokens a conversation trains on (prompt and replies): see :func:`conversation_text`."""
        chat = [dict(m) for m in messages]
        if getattr(self.tokenizer, "chat_template", None):
            text = conversation_text(self.tokenizer, chat, tools)
            return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        return sum(self.count_text(f"{m['role']}: {m['content']}\n") for m in chat)

    def count(self, record: Mapping[str, Any]) -> int:
        if isinstance(record.get("text"), str):
            return self.count_document(record["text"])
        tools = record.get("tools")
        return self.count_messages(record.get("messages") or [], tools if isinstance(tools, list) else None)

    def stamp(self, record: dict[str, Any]) -> dict[str, Any]:
        """Set ``record["tokens"]`` (recounting only when the tokenizer differs from the one recorded)."""
        tokens = record.get("tokens")
        if not (
            isinstance(tokens, dict)
            and tokens.get("tokenizer") == self.name
            and tokens.get("method") == COUNT_METHOD
        ):
            record["tokens"] = {
                "tokenizer": self.name,
                "count": self.count(record),
                "exact": self.exact,
                "method": COUNT_METHOD,
            }
        return record


def document_token_ids(text: str, tokenizer: Any) -> list[int]:
    """A document's token ids as training sees them: the tokenizer's own special tokens, then EOS."""
    ids: list[int] = list(tokenizer(text)["input_ids"])
    eos = tokenizer.eos_token_id
    if isinstance(eos, int) and (not ids or ids[-1] != eos):
        ids.append(eos)
    return ids


def conversation_text(
    tokenizer: Any,
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]] | None = None,
    *,
    add_generation_prompt: bool = False,
) -> str:
    """A conversation rendered by the tokenizer's chat template (with its tool definitions, if any)."""
    rendered = tokenizer.apply_chat_template(
        [dict(m) for m in messages],
        tools=[dict(t) for t in tools] if tools else None,
        tokenize=False,
        add_generation_prompt=add_generation_prompt,
    )
    if not isinstance(rendered, str):
        raise TypeError(f"apply_chat_template returned {type(rendered).__name__}, expected str")
    return rendered


def _load(name_or_path: str | Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(name_or_path), local_files_only=True)


def _context_length(name_or_path: str | Path) -> int | None:
    try:
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(str(name_or_path), local_files_only=True)
    except Exception:  # a tokenizer without a model config: the length is unknown, not an error
        return None
    value = getattr(config, "max_position_embeddings", None)
    return int(value) if isinstance(value, int) else None


def _candidates(role: RoleModel) -> list[str]:
    from teachwhy.models.roles import open_weights

    if "tokenizer_path" in role.args:
        return [str(role.args["tokenizer_path"])]
    weights = open_weights(role)
    if weights is not None:
        return [weights]
    provider, _, rest = role.model.partition("/")
    if provider == "openai-api":
        _, _, model = rest.partition("/")
        return [model] if model else []
    return []


def counter_from_tokenizer(name_or_path: str) -> TokenCounter:
    """A counter for an explicitly named tokenizer (a folder or a locally cached HF id), treated as exact.

    Raises:
        UserError: it cannot be loaded from local files.
    """
    try:
        return TokenCounter(name_or_path, True, _load(name_or_path), _context_length(name_or_path))
    except Exception as e:
        raise UserError(
            f"cannot load tokenizer '{name_or_path}' from local files ({type(e).__name__})", key="--tokenizer"
        ) from None


def counter_for_role(role: RoleModel, *, fallback: str | None = None) -> TokenCounter:
    """The token counter for a model role (its own tokenizer, or the fallback, labelled as such).

    Args:
        role: the role (normally ``target``).
        fallback: a tokenizer path or local HF id to use when the role's own cannot be loaded; default: the
            embedded model's tokenizer.

    Raises:
        UserError: the fallback itself cannot be loaded.
    """
    from teachwhy.models import materialise_embedded

    if role.model == "embedded":
        folder = materialise_embedded(show_progress=False)
        return TokenCounter("embedded:SmolLM2-135M-Instruct", True, _load(folder), _context_length(folder))
    for candidate in _candidates(role):
        try:
            return TokenCounter(candidate, True, _load(candidate), _context_length(candidate))
        except Exception:  # not available locally: fall back, and say so in every record
            continue
    if fallback is None:
        folder = materialise_embedded(show_progress=False)
        return TokenCounter(
            f"fallback:embedded:SmolLM2-135M-Instruct (for {role.model})", False, _load(folder)
        )
    try:
        return TokenCounter(f"fallback:{fallback} (for {role.model})", False, _load(fallback))
    except Exception as e:
        raise UserError(
            f"cannot load tokenizer '{fallback}' from local files ({type(e).__name__})", key="--tokenizer"
        ) from None


def target_counter(config: ExperimentConfig, *, fallback: str | None = None) -> TokenCounter:
    """The token counter for the experiment's target model."""
    return counter_for_role(config.models.target, fallback=fallback)
