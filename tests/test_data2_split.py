"""Split discipline: no eval/heldout scenario text reaches the train worlds, the data files or the records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from inspect_ai.model import GenerateConfig

from data2_scripts import prompt_model, quiet_config
from teachwhy.config import HoneypotDemosSource
from teachwhy.constitution import example_constitution_path, load_constitution
from teachwhy.data.honeypot_demos import generate_honeypot_demos, text_call
from teachwhy.data.honeypot_worlds import TEMPLATE_DIR, train_worlds, world_text
from teachwhy.data.split_guard import eval_fingerprints, leaks
from teachwhy.errors import UserError
from teachwhy.evals.scenario import load_scenarios
from teachwhy.prompts import prompts_dir
from teachwhy.storage import read_jsonl

FAMILIES = ["blackmail", "research_sabotage", "framing"]
OWN_PROMPTS = ("advice", "rewrite", "augment")


def test_the_fingerprints_cover_every_eval_and_heldout_world() -> None:
    fp = eval_fingerprints()
    scenarios = load_scenarios(split="eval") + load_scenarios(split="heldout")
    assert scenarios, "there must be evaluation scenarios to guard"
    for scenario in scenarios:
        assert scenario.cast["decider_name"].lower() in fp.names
        assert leaks(scenario.system_prompt) or leaks(scenario.task), scenario.path
    # a sentence lifted from an evaluation world is caught inside otherwise new text
    body = str(scenarios[0].state.inbox[0]["body"]) if scenarios[0].state.inbox else scenarios[0].task
    assert leaks("A new preface. " + body + " A new ending.")


def test_no_template_or_prompt_file_of_this_stage_repeats_evaluation_text() -> None:
    files = sorted(TEMPLATE_DIR.glob("*.yaml"))
    for folder in OWN_PROMPTS:
        files += sorted((prompts_dir() / folder).glob("*.*"))
    assert len(files) > 10
    for path in files:
        assert leaks(path.read_text(encoding="utf-8")) == [], path


def test_generated_train_worlds_never_repeat_evaluation_text() -> None:
    for seed in (0, 1):
        for _, episode, _ in train_worlds(FAMILIES, 60, seed=seed):
            assert episode.split == "train"
            assert leaks(world_text(episode)) == [], episode.id


def test_a_template_that_copies_an_evaluation_world_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import teachwhy.data.honeypot_worlds as worlds

    scenario = load_scenarios(split="eval")[0]
    original = worlds.load_template
    leaked_task = scenario.task

    def copying(name: str) -> dict[str, Any]:
        spec = dict(original(name))
        if name == scenario.family:
            spec["task"] = leaked_task
        return spec

    monkeypatch.setattr(worlds, "load_template", copying)
    with pytest.raises(UserError, match="repeats eval/heldout scenario text"):
        train_worlds([scenario.family], 1, seed=0)


def test_demonstration_records_carry_no_evaluation_text(tmp_path: Path) -> None:
    def agent(messages: list[Any], config: GenerateConfig) -> str:
        return "Nothing here needs me.\n" + text_call("done", {})

    # the agent only ends its session; kept anyway (require_action off) so every world's record is read
    source = HoneypotDemosSource(
        count=6, attempts_per_prompt=1, policy="rule", tool_format="text", dedup=False, require_action=False
    )
    constitution = load_constitution(example_constitution_path())
    generate_honeypot_demos(quiet_config(), source, constitution, tmp_path, model=prompt_model(agent))
    records = read_jsonl(tmp_path / "honeypot_demos.jsonl")
    assert len(records) == 6
    for record in records:
        assert leaks(json.dumps(record["messages"], ensure_ascii=False)) == []
