"""The RL reward: the ``judge`` role scores each answer against the constitution's principles (a rubric file).

For every completion the judge sees the principles the prompt names (or the configured default), the
conversation and the answer, and replies with one ``P<n>: <1-10>`` line per principle
(``teachwhy/rl/rubric.md`` or the user's own rubric with the same variables). The reward is the mean score
mapped to [0, 1], plus the optional terms:

- length: ``-length_weight * min(1, words / target_words - 1)`` for answers longer than ``target_words``;
- format: ``-format_weight`` for an answer cut off at ``max_completion_length`` or with leftover chat-template
  markers.

A judgement that is not a complete set of scores is no reward signal: a failed call (``error``), a refusal or
a content filter (``refused``), a reply stopped by its length limit (``cut_off``) or one missing a score
(``unparseable``) gives ``None``, which GRPOTrainer turns into NaN and leaves out of the group's baseline and
the loss (advantage 0). Every judgement — status, per-principle scores, terms, answer — is appended to
``rewards.jsonl``, so the exclusions are counted and the per-principle scores can be read per step.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from inspect_ai.model import ChatMessage, ChatMessageSystem, ChatMessageUser, GenerateConfig, Model

from teachwhy.assessment.judge import REFUSAL
from teachwhy.constitution import Constitution
from teachwhy.errors import UserError
from teachwhy.prompts import Prompt, load_prompt, parse_prompt
from teachwhy.storage import JsonlAppender, content_hash

REWARDS_FILE = "rewards.jsonl"
JudgeStatus = Literal["ok", "refused", "unparseable", "cut_off", "error"]
STATUSES: tuple[JudgeStatus, ...] = ("ok", "refused", "unparseable", "cut_off", "error")
_SCORE = re.compile(r"^[\s*#>_-]*P(\d+)[\s*_]*:[\s*_`]*(\d{1,2})\b", re.I | re.M)
_REASONS = re.compile(r"^[\s*#>_-]*reasons[\s*_]*:(.*?)(?=^[\s*#>_-]*P\d+[\s*_]*:|\Z)", re.I | re.M | re.S)
_TEMPLATE_MARKERS = ("<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|eot_id|>")


@dataclass(frozen=True)
class Judgement:
    """The judge's scoring of one answer.

    Attributes:
        status: ``ok`` only when every principle got a score from 1 to 10.
        scores: principle id -> score (complete when ``ok``, else what could be read).
        reasons: the judge's reasons, or why there is no score.
        raw: the judge's reply.
    """

    status: JudgeStatus
    scores: dict[str, int] = field(default_factory=dict)
    reasons: str = ""
    raw: str = ""

    @property
    def score(self) -> float | None:
        """The mean score mapped to [0, 1] (``None`` unless ``ok``)."""
        if self.status != "ok" or not self.scores:
            return None
        return (sum(self.scores.values()) / len(self.scores) - 1.0) / 9.0


def load_rubric(path: Path | None = None) -> Prompt:
    """The rubric prompt: the user's file, or the shipped ``teachwhy/rl/rubric.md``."""
    if path is None:
        return load_prompt("rubric", area="rl")
    if not path.is_file():
        raise UserError("rubric file not found", file=path, key="rl.rubric")
    return parse_prompt(path.read_text(encoding="utf-8"), name=path.stem, path=path)


def parse_judgement(text: str, principle_ids: Sequence[str]) -> Judgement:
    """Read ``P<n>: <score>`` lines (the last of each label counts) into per-principle scores."""
    found: dict[int, int] = {}
    for label, value in _SCORE.findall(text):
        found[int(label)] = int(value)
    scores = {
        pid: found[n] for n, pid in enumerate(principle_ids, start=1) if n in found and 1 <= found[n] <= 10
    }
    match = _REASONS.search(text)
    reasons = match.group(1).strip() if match else ""
    if len(scores) == len(principle_ids):
        return Judgement("ok", scores, reasons, text)
    if not found and REFUSAL.search(text[:400]):
        return Judgement("refused", {}, "the judge declined to score", text)
    missing = [f"P{n}" for n, pid in enumerate(principle_ids, start=1) if pid not in scores]
    return Judgement("unparseable", scores, f"no score from 1 to 10 for {', '.join(missing)}", text)


def principles_for(
    requested: Sequence[str], constitution: Constitution, default: Sequence[str] | None
) -> list[str]:
    """The prompt's principles found in this constitution; else the default (every principle if unset)."""
    known = {p.id for p in constitution.principles}
    chosen = [p for p in requested if p in known]
    if chosen:
        return chosen
    return [p for p in default if p in known] if default else [p.id for p in constitution.principles]


def render_request(
    rubric: Prompt,
    constitution: Constitution,
    principle_ids: Sequence[str],
    messages: Sequence[Mapping[str, str]],
    answer: str,
    *,
    cut_off: bool,
) -> list[ChatMessage]:
    """The judge's messages for one answer."""
    by_id = {p.id: p for p in constitution.principles}
    listing = "\n\n".join(
        f"P{n}. {by_id[pid].title} ({by_id[pid].section})\n{by_id[pid].text.strip()}"
        for n, pid in enumerate(principle_ids, start=1)
    )
    conversation = "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in messages)
    rendered = rubric.render(
        principles=listing,
        conversation=conversation,
        answer=answer.strip() or "(no answer)",
        cut_off=" (the answer was cut off by the length limit; score what is there)" if cut_off else "",
        score_lines="\n".join(f"P{n}: <1-10>" for n in range(1, len(principle_ids) + 1)),
    )
    out: list[ChatMessage] = [ChatMessageUser(content=rendered.user)]
    if rendered.system:
        out.insert(0, ChatMessageSystem(content=rendered.system))
    return out


async def judge_answer(
    judge: Model, request: list[ChatMessage], principle_ids: Sequence[str], *, max_tokens: int
) -> Judgement:
    """Ask the judge; a failed call, a filter or a reply cut off by its limit is never a score."""
    try:
        output = await judge.generate(request, config=GenerateConfig(temperature=0.0, max_tokens=max_tokens))
    except Exception as e:  # counted as an error: the answer gets no reward signal
        return Judgement("error", reasons=f"judge call failed: {type(e).__name__}: {e}")
    if output.error:
        return Judgement("error", reasons=f"judge call failed: {output.error}")
    if output.stop_reason == "content_filter":
        return Judgement("refused", reasons="the provider's content filter stopped the judge")
    if output.stop_reason in ("max_tokens", "model_length"):
        return Judgement(
            "cut_off", reasons=f"the judge's reply was cut off ({output.stop_reason})", raw=output.completion
        )
    return parse_judgement(output.completion, principle_ids)


def completion_text(completion: Any) -> str:
    """A completion as text (TRL passes a string, or a list of messages for conversational prompts)."""
    if isinstance(completion, str):
        return completion
    return "".join(str(m.get("content", "")) for m in completion if isinstance(m, dict))


class ConstitutionReward:
    """GRPO reward function: the judge's constitution score plus optional length and format terms.

    Called by GRPOTrainer with the batch's prompts, completions, completion ids and the dataset's columns
    (``prompt_id``, ``environment``, ``principles``, ``augmented``); returns one reward or ``None`` per
    completion and appends one line per completion to ``log_path``.
    """

    __name__ = "constitution"  # GRPOTrainer names a reward function's metrics after it

    def __init__(
        self,
        *,
        judge: Model,
        constitution: Constitution,
        rubric: Prompt,
        log_path: Path,
        default_principles: Sequence[str] | None = None,
        judge_max_tokens: int = 768,
        max_completion_length: int = 256,
        length_weight: float = 0.0,
        target_words: int = 200,
        format_weight: float = 0.0,
    ) -> None:
        self.judge = judge
        self.constitution = constitution
        self.rubric = rubric
        self.log_path = log_path
        self.default_principles = list(default_principles) if default_principles else None
        self.judge_max_tokens = judge_max_tokens
        self.max_completion_length = max_completion_length
        self.length_weight = length_weight
        self.target_words = target_words
        self.format_weight = format_weight
        self.counts: Counter[str] = Counter()

    def identity(self) -> dict[str, Any]:
        """What decides the rewards (for a run's fingerprint)."""
        return {
            "judge": str(self.judge),
            "rubric": self.rubric.sha256,
            "constitution": self.constitution.sha256,
            "default_principles": self.default_principles,
            "judge_max_tokens": self.judge_max_tokens,
            "length": [self.length_weight, self.target_words],
            "format": self.format_weight,
        }

    def __call__(
        self, prompts: list[Any], completions: list[Any], completion_ids: list[list[int]], **columns: Any
    ) -> list[float | None]:
        state = columns.get("trainer_state")
        step = int(state.global_step) + 1 if state is not None else 0
        texts = [completion_text(c) for c in completions]
        cut = [len(ids) >= self.max_completion_length for ids in completion_ids]
        principle_sets = [
            principles_for(list(p or []), self.constitution, self.default_principles)
            for p in columns.get("principles", [[]] * len(texts))
        ]
        requests = [
            render_request(self.rubric, self.constitution, pids, _messages(prompt), text, cut_off=c)
            for prompt, text, pids, c in zip(prompts, texts, principle_sets, cut, strict=True)
        ]
        judgements = asyncio.run(self._judge_all(requests, principle_sets))
        rewards: list[float | None] = []
        log_metric = columns.get("log_metric")
        with JsonlAppender(self.log_path) as log:
            for i, (text, judgement) in enumerate(zip(texts, judgements, strict=True)):
                self.counts[judgement.status] += 1
                terms = self._terms(text, cut[i])
                score = judgement.score
                reward = None if score is None else score + sum(terms.values())
                rewards.append(reward)
                prompt_id = _column(columns, "prompt_id", i)
                log.append(
                    {
                        "id": f"{step}:{i}:{content_hash(prompt_id, text)}",
                        "step": step,
                        "prompt_id": prompt_id,
                        "environment": _column(columns, "environment", i),
                        "augmented": _column(columns, "augmented", i),
                        "status": judgement.status,
                        "scores": judgement.scores,
                        "judge_score": score,
                        "terms": terms,
                        "reward": reward,
                        "reasons": judgement.reasons,
                        "completion_cut_off": cut[i],
                        "answer": text,
                    }
                )
        if callable(log_metric):
            for status in STATUSES:
                log_metric(f"judge/{status}", float(sum(j.status == status for j in judgements)))
        return rewards

    async def _judge_all(
        self, requests: list[list[ChatMessage]], principle_sets: list[list[str]]
    ) -> list[Judgement]:
        return list(
            await asyncio.gather(
                *[
                    judge_answer(self.judge, r, pids, max_tokens=self.judge_max_tokens)
                    for r, pids in zip(requests, principle_sets, strict=True)
                ]
            )
        )

    def _terms(self, text: str, cut_off: bool) -> dict[str, float]:
        terms: dict[str, float] = {}
        if self.length_weight:
            over = len(text.split()) / self.target_words - 1.0
            terms["length"] = -self.length_weight * min(1.0, max(0.0, over))
        if self.format_weight:
            broken = cut_off or any(marker in text for marker in _TEMPLATE_MARKERS)
            terms["format"] = -self.format_weight if broken else 0.0
        return terms


def _messages(prompt: Any) -> list[dict[str, str]]:
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return [{"role": str(m["role"]), "content": str(m["content"])} for m in prompt]


def _column(columns: Mapping[str, Any], name: str, index: int) -> Any:
    values = columns.get(name)
    return values[index] if isinstance(values, list) and index < len(values) else None
