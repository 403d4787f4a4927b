"""Exact token counts with the target model's tokenizer.

The tokenizer is found from the target role's model string: ``embedded`` uses the materialised SmolLM2 folder;
``hf/<id-or-path>``, ``vllm/<id>`` and ``openai-api/<service>/<id>`` try that Hugging Face id or path from
local files (nothing is downloaded). When none can be loaded (an API model such as ``anthropic/…``), a
fallback tokenizer is used and every record says so: ``tokens.exact`` is ``false`` and ``tokens.tokenizer``
names both.

Documents are counted without special tokens; chat records through the tokenizer's chat template, which is
what chat fine-tuning sees.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from teachwhy.config import ExperimentConfig, RoleModel
from teachwhy.errors import UserError


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
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def count_messages(self, messages: Sequence[Mapping[str, str]]) -> int:
        chat = [{"role": m["role"], "content": m["content"]} for m in messages]
        if getattr(self.tokenizer, "chat_template", None):
            encoded = self.tokenizer.apply_chat_template(chat, tokenize=True)
            ids = encoded["input_ids"] if hasattr(encoded, "keys") else encoded
            return len(ids)
        return sum(self.count_text(f"{m['role']}: {m['content']}\n") for m in chat)

    def count(self, record: Mapping[str, Any]) -> int:
        if isinstance(record.get("text"), str):
            return self.count_text(record["text"])
        return self.count_messages(record.get("messages") or [])

    def stamp(self, record: dict[str, Any]) -> dict[str, Any]:
        """Set ``record["tokens"]`` (recounting only when the tokenizer differs from the one recorded)."""
        tokens = record.get("tokens")
        if not (isinstance(tokens, dict) and tokens.get("tokenizer") == self.name):
            record["tokens"] = {"tokenizer": self.name, "count": self.count(record), "exact": self.exact}
        return record


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
