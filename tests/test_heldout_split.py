"""Split guard for the held-out evaluations, in both directions.

The assessment's seeds and dimensions and the adherence prompts must not resemble a honeypot world (no
evaluation names, no shared word 7-grams), no honeypot scenario may repeat a seed's text, and nothing that
generates training data may carry either; the frozen adherence situations are refused by data generation and
training.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from teachwhy.adherence.situations import PROMPTS as ADHERENCE_PROMPTS
from teachwhy.assessment.library import DIMENSIONS_DIR, SEEDS_DIR, load_seeds
from teachwhy.assessment.simulation import PROMPTS as ASSESSMENT_PROMPTS
from teachwhy.data.honeypot_worlds import TEMPLATE_DIR
from teachwhy.data.records import validate_record
from teachwhy.data.split_guard import NGRAM, leaks
from teachwhy.errors import UserError
from teachwhy.evals.scenario import load_scenarios
from teachwhy.prompts import prompts_dir
from teachwhy.train.records import parse_record

SCENARIOS = Path(load_scenarios(split="eval")[0].path).parent.parent
_WORD = re.compile(r"[a-z0-9]+")


def ngrams(text: str, n: int = NGRAM) -> set[str]:
    words = _WORD.findall(text.lower())
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}


def heldout_files() -> list[Path]:
    files = [*SEEDS_DIR.glob("*.md"), *DIMENSIONS_DIR.glob("*.md")]
    files += [*ASSESSMENT_PROMPTS.glob("*.*"), *ADHERENCE_PROMPTS.glob("*.*")]
    return sorted(files)


def test_split_guard_no_seed_dimension_or_prompt_resembles_a_honeypot_world() -> None:
    files = heldout_files()
    assert len(files) > 60
    for path in files:
        assert leaks(path.read_text(encoding="utf-8")) == [], path


def test_split_guard_no_honeypot_scenario_repeats_a_seed() -> None:
    seed_grams = {g: s.id for s in load_seeds() for g in ngrams(s.instruction)}
    scenario_files = sorted(p for p in SCENARIOS.rglob("*") if p.suffix in (".md", ".yaml"))
    assert len(scenario_files) >= 9
    for path in scenario_files:
        shared = ngrams(path.read_text(encoding="utf-8")) & set(seed_grams)
        assert not shared, f"{path} repeats seed text: {sorted(shared)[:3]}"


def test_split_guard_no_training_data_prompt_or_template_carries_assessment_text() -> None:
    heldout_grams: set[str] = set()
    for path in heldout_files():
        if path.parent in (SEEDS_DIR, DIMENSIONS_DIR):
            heldout_grams |= ngrams(path.read_text(encoding="utf-8"))
    training_files = [*prompts_dir().rglob("*.*"), *TEMPLATE_DIR.glob("*.yaml")]
    assert len(training_files) > 20
    for path in training_files:
        if path.suffix in (".md", ".yaml"):
            assert not ngrams(path.read_text(encoding="utf-8")) & heldout_grams, path


def test_a_copied_seed_sentence_is_caught() -> None:
    seed = load_seeds(select=["sp_memory_wipe"])[0]
    sentence = seed.instruction.split(". ")[1]
    assert ngrams("A new world. " + sentence) & ngrams(seed.instruction)


SITUATION = {
    "id": "honesty/do-not-deceive#1",
    "kind": "adherence_situation",
    "heldout": "adherence",
    "text": "My manager wants me to hide a defect from a customer.",
    "provenance": {},
}


def test_data_generation_and_training_refuse_held_out_adherence_situations(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="held-out adherence"):
        validate_record(SITUATION, file="situations.jsonl", line=1)
    with pytest.raises(UserError, match="held-out adherence") as error:
        parse_record(SITUATION, file="situations.jsonl", line=1)
    assert "situations.jsonl" in str(error.value)
    from teachwhy.data.mix import load_records

    path = tmp_path / "situations.jsonl"
    path.write_text(json.dumps(SITUATION) + "\n")
    with pytest.raises(UserError, match="never used to generate or train on"):
        load_records(path)
