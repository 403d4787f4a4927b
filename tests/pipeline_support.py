"""Support for experiment tests: a deterministic scripted generator provider and a tiny target model.

The provider is a real Inspect model API (registered by name, like any provider), so an experiment config
can name it (`scripted/writer`) and its content hash stays stable across runs and processes. It answers
every prompt with fluent, varied text derived from a hash of the prompt, and counts its calls.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from inspect_ai.model import (
    ChatMessage,
    GenerateConfig,
    ModelAPI,
    ModelOutput,
    ModelUsage,
    modelapi,
)
from inspect_ai.tool import ToolChoice, ToolInfo

CALLS: list[str] = []

_SUBJECTS = [
    "The nurse",
    "A researcher",
    "The volunteer",
    "An engineer",
    "The teacher",
    "A manager",
    "The pilot",
]
_VERBS = ["weighed", "questioned", "explained", "reconsidered", "documented", "discussed", "examined"]
_OBJECTS = [
    "the honest report",
    "the quiet shortcut",
    "the oversight rules",
    "the harm to others",
    "the promise to users",
    "the deadline pressure",
    "the team's trust",
]
_REASONS = [
    "because trust grows when people can check the work",
    "since hidden changes leave others unable to correct mistakes",
    "because people affected deserve a voice",
    "since the rules exist to catch errors early",
    "because a fair process matters as much as the result",
    "since honesty keeps future decisions sound",
    "because raising concerns openly protects everyone",
]


def scripted_text(prompt: str, words: int = 70) -> str:
    """Deterministic, non-repetitive prose for ``prompt``."""
    digest = hashlib.sha256(prompt.encode()).digest()
    sentences: list[str] = []
    i = 0
    while sum(len(s.split()) for s in sentences) < words:
        b = digest[i % len(digest)] + i
        subject, verb = _SUBJECTS[b % 7], _VERBS[(b // 7) % 7]
        sentences.append(f"{subject} {verb} {_OBJECTS[(b // 3 + i) % 7]} {_REASONS[(b + 2 * i) % 7]}.")
        i += 1
    return f"Case {digest.hex()[:8]}. " + " ".join(sentences)


class ScriptedAPI(ModelAPI):
    def __init__(
        self,
        model_name: str,
        base_url: str | None = None,
        api_key: str | None = None,
        config: GenerateConfig = GenerateConfig(),
        **model_args: Any,
    ) -> None:
        super().__init__(model_name, base_url, api_key, [], config)

    async def generate(
        self,
        input: list[ChatMessage],
        tools: list[ToolInfo],
        tool_choice: ToolChoice,
        config: GenerateConfig,
    ) -> ModelOutput:
        prompt = "\n".join(m.text for m in input)
        CALLS.append(self.model_name)
        text = scripted_text(prompt)
        output = ModelOutput.from_content(model=self.model_name, content=text)
        output.usage = ModelUsage(input_tokens=len(prompt.split()), output_tokens=len(text.split()))
        return output


@modelapi(name="scripted")
def scripted() -> type[ModelAPI]:
    return ScriptedAPI


def build_tiny_target(
    folder: Path,
    tokenizer_dir: Path,
    *,
    hidden: int = 32,
    max_positions: int = 8192,
    initializer_range: float = 0.02,
) -> Path:
    """A 2-layer random Llama with the embedded tokenizer (and chat template), saved to ``folder``.

    A large ``initializer_range`` makes the logits peaked, so greedy choices are never near-ties.
    """
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=max_positions,
        initializer_range=initializer_range,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def experiment_yaml(target: Path, *, advice_count: int = 3) -> str:
    return f"""
name: pipeline-test
constitution: constitution.md
workspace: runs
models:
  generator: scripted/writer
  judge: scripted/judge
  auditor: scripted/judge
  target: embedded/{target}
generation: {{max_tokens: 96, max_connections: 4, seed: 0}}
train:
  method: lora
  lora: {{r: 4, alpha: 8, dropout: 0.0}}
  stages: [{{name: train, kind: mixed, max_steps: 4}}]
  batch_size: 2
  max_length: 512
  save_steps: 2
  learning_rate: 1.0e-3
  lr_scheduler: constant
  warmup_ratio: 0.0
# the tiny random target's replies are cut off at 12 tokens, so its episodes may end unscored (truncated);
# these tests are about the stages, so such an eval still counts as done
eval: {{families: [blackmail], split: heldout, limit: 1, max_turns: 2, max_tokens: 12, policy: rule,
       max_failed_share: 1.0}}
arms:
  - name: baseline
  - name: advice
    data:
      advice: {{count: {advice_count}, judge_filter: false, revise: false, min_words: 10}}
  - name: stories
    data:
      stories: {{count: 2, judge_filter: false, min_words: 10}}
"""
