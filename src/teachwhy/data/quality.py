"""Quality checks on generated text: refusals, too short, degenerate repetition, and the judge filter.

Each check returns a reason string when the text fails (the engine counts and records it) or ``None``. The
judge filter grades an item with a rubric from ``teachwhy/prompts/judge_rubric.md``; output that cannot be
parsed is ``judge_unparseable`` and the item is dropped, never scored.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

from inspect_ai.model import GenerateConfig, Model

from teachwhy.constitution import Principle
from teachwhy.data.engine import Drop, call_model, chat_input, unusable_stop
from teachwhy.data.records import verdict
from teachwhy.prompts import Prompt, load_pool, load_prompt
from teachwhy.resources import Stamp, resource_path, stamp

_WORD = re.compile(r"\w+")


def _refusal_openings() -> tuple[str, ...]:
    return _openings(stamp(resource_path("prompts", "checks_refusals.yaml")))


@cache
def _openings(file: Stamp) -> tuple[str, ...]:  # keyed by the file, so an overlay's list is read
    return tuple(str(x).lower() for x in load_pool("checks_refusals"))


def refusal(text: str) -> str | None:
    """``refusal`` when the text opens like a refusal instead of the requested piece."""
    head = " ".join(text.strip().lower().replace("’", "'").split())[:200]
    return "refusal" if head.startswith(_refusal_openings()) else None


def too_short(text: str, min_words: int) -> str | None:
    """``too_short`` when the text has fewer than ``min_words`` words."""
    return "too_short" if len(_WORD.findall(text)) < min_words else None


def repetitive(text: str, *, n: int = 4, max_repeat_fraction: float = 0.5) -> str | None:
    """``repetitive`` when most word n-grams repeat (a model stuck in a loop)."""
    words = _WORD.findall(text.lower())
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    if len(grams) < 20:
        return None
    repeated = 1.0 - len(set(grams)) / len(grams)
    return "repetitive" if repeated > max_repeat_fraction else None


def text_checks(text: str, *, min_words: int) -> Drop | None:
    """The checks every prose generation passes: not a refusal, long enough, not a loop."""
    for reason in (refusal(text), too_short(text, min_words), repetitive(text)):
        if reason:
            return Drop(reason)
    return None


@dataclass(frozen=True)
class JudgeResult:
    """The judge's grades, or why there are none.

    ``stopped`` is set when the judge's reply was cut off or filtered (``truncated``, ``content_filter``,
    ``model_length``): such a reply is never read for scores.
    """

    scores: dict[str, float] | None
    raw: str
    stopped: str | None = None

    @property
    def score(self) -> float | None:
        """The lowest criterion score: an item must be good on every criterion."""
        return min(self.scores.values()) if self.scores else None


def parse_judge_scores(text: str, criteria: Sequence[str], scale: float) -> dict[str, float] | None:
    """Read ``criterion: number`` lines; ``None`` if any criterion is missing, repeated or out of range."""
    scores: dict[str, float] = {}
    for criterion in criteria:
        pattern = re.compile(
            rf"^\W*{re.escape(criterion)}\W*[:=]\s*\**\s*(-?\d+(?:\.\d+)?)\s*(?:/\s*\d+)?", re.I | re.M
        )
        found = pattern.findall(text)
        if len(set(found)) != 1:
            return None
        value = float(found[0])
        if not 0 <= value <= scale:
            return None
        scores[criterion] = value
    return scores


@dataclass
class JudgeFilter:
    """Grades items with a rubric; keeps those whose lowest score reaches ``min_score``.

    Attributes:
        model: the judge model.
        model_name: its model string (recorded in the verdict).
        min_score: the threshold on the 0–``scale`` rubric scale.
        max_tokens: the judge's output allowance.
        rubric: the rubric prompt (front matter lists ``scores`` and ``scale``).
    """

    model: Model
    model_name: str
    min_score: float
    max_tokens: int = 64
    rubric: Prompt | None = None

    def __post_init__(self) -> None:
        if self.rubric is None:
            self.rubric = load_prompt("judge_rubric")

    async def grade(self, *, kind: str, principles: Sequence[Principle], text: str, seed: int) -> JudgeResult:
        """Ask the judge; raises :class:`~teachwhy.data.engine.ModelCallError` when the call fails."""
        assert self.rubric is not None
        rendered = self.rubric.render(
            kind=kind,
            principle_title="; ".join(p.title for p in principles),
            principle_text="\n\n".join(p.text for p in principles),
            text=text,
        )
        config = GenerateConfig(temperature=0.0, max_tokens=self.max_tokens, seed=seed)
        output = await call_model(self.model, chat_input(rendered), config, False)
        stopped = unusable_stop(output, self.max_tokens)
        if stopped is not None:
            return JudgeResult(None, output.completion, stopped)
        criteria = [str(c) for c in self.rubric.meta.get("scores", ["score"])]
        scale = float(self.rubric.meta.get("scale", 10))
        return JudgeResult(parse_judge_scores(output.completion, criteria, scale), output.completion)

    async def check(
        self, *, kind: str, principles: Sequence[Principle], text: str, seed: int
    ) -> tuple[Drop | None, dict[str, dict[str, object]]]:
        """Grade ``text``; return a drop (below threshold or unparseable) or ``None``, plus the verdict."""
        result = await self.grade(kind=kind, principles=principles, text=text, seed=seed)
        if result.stopped is not None:
            reason = f"judge_{result.stopped}"
            filters = {"judge": verdict(False, reason=f"{reason} ({self.model_name})")}
            return Drop(reason, result.raw[:500], filters), filters
        if result.scores is None:
            filters = {"judge": verdict(False, reason=f"judge_unparseable ({self.model_name})")}
            return Drop("judge_unparseable", result.raw[:500], filters), filters
        score = result.score
        assert score is not None
        detail = ", ".join(f"{k}={v:g}" for k, v in result.scores.items())
        passed = score >= self.min_score
        filters = {"judge": verdict(passed, score=score, reason=f"{detail} ({self.model_name})")}
        if not passed:
            return Drop("judge_below_threshold", f"{detail} < {self.min_score:g}", filters), filters
        return None, filters


def judge_disabled() -> dict[str, dict[str, object]]:
    """The verdict recorded when the judge filter is switched off (``passed`` is ``None``: not judged)."""
    return {"judge": verdict(None, reason="judge filter disabled")}
