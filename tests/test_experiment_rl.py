"""RL in an experiment: the rl stage follows an arm's SFT, its checkpoints are swept by the evals and the
summary tells RL steps from SFT steps."""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from inspect_ai.model import ChatMessage, GenerateConfig, ModelAPI, ModelOutput, ModelUsage, modelapi
from inspect_ai.tool import ToolChoice, ToolInfo

import pipeline_support
from teachwhy.config import load_config
from teachwhy.constitution import example_constitution_path
from teachwhy.errors import UserError
from teachwhy.experiment.pipeline import ExperimentPipeline
from teachwhy.experiment.stages import StageRecord, StageRunner
from teachwhy.report.build import build_report
from teachwhy.workspace import init_workspace

JUDGE_CALLS: list[str] = []


class RubricJudgeAPI(ModelAPI):
    """A judge that scores every ``P<n>.`` principle of the rubric it is shown (scores from a hash)."""

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
        self, input: list[ChatMessage], tools: list[ToolInfo], tool_choice: ToolChoice, config: GenerateConfig
    ) -> ModelOutput:
        prompt = "\n".join(m.text for m in input)
        JUDGE_CALLS.append(prompt)
        labels = sorted({int(n) for n in re.findall(r"^P(\d+)\. ", prompt, re.M)})
        digest = hashlib.sha256(prompt.encode()).digest()
        text = "REASONS: scripted.\n" + "\n".join(f"P{n}: {1 + digest[n] % 10}" for n in labels)
        if not labels:  # not a rubric (e.g. the honeypot judge): a scripted prose answer
            text = pipeline_support.scripted_text(prompt)
        output = ModelOutput.from_content(model=self.model_name, content=text)
        output.usage = ModelUsage(input_tokens=len(prompt.split()), output_tokens=len(text.split()))
        return output


@modelapi(name="rubricjudge")
def rubricjudge() -> type[ModelAPI]:
    return RubricJudgeAPI


@pytest.fixture(scope="module")
def tiny_target(tmp_path_factory: pytest.TempPathFactory, embedded_model_dir: Path) -> Path:
    return pipeline_support.build_tiny_target(tmp_path_factory.mktemp("tiny-target"), embedded_model_dir)


RL = (
    "{steps: 2, save_steps: 1, prompts_per_step: 1, num_generations: 2, max_completion_length: 8, "
    "prompt_limit: 3, tool_rate: 0.5, system_prompt_rate: 0.5}"
)


def _workspace(root: Path, target: Path, rl: str = RL) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(example_constitution_path(), root / "constitution.md")
    text = pipeline_support.experiment_yaml(target)
    text = text.replace("judge: scripted/judge", "judge: rubricjudge/judge")
    # the stories arm of the shared config is replaced by an arm that only does RL (from the target)
    text = text.replace(
        "  - name: stories\n    data:\n      stories: {count: 2, judge_filter: false, min_words: 10}\n",
        f"  - name: rl_only\n    rl: {RL}\n",
    )
    assert "rl_only" in text and "advice: {count" in text
    text = text.replace(
        "      advice: {count: 3, judge_filter: false, revise: false, min_words: 10}\n",
        f"      advice: {{count: 3, judge_filter: false, revise: false, min_words: 10}}\n    rl: {rl}\n",
    )
    config = root / "teachwhy.yaml"
    config.write_text(text)
    return config


def _run(config: Path) -> tuple[Any, list[tuple[str, StageRecord]]]:
    events: list[tuple[str, StageRecord]] = []
    runner = StageRunner(load_config(config).workspace_path, on_event=lambda e, r: events.append((e, r)))
    return ExperimentPipeline(load_config(config), runner).run(), events


def test_rl_follows_sft_and_every_rl_checkpoint_is_evaluated(tmp_path: Path, tiny_target: Path) -> None:
    config = _workspace(tmp_path / "exp", tiny_target)
    summary, events = _run(config)
    ran = {r.stage_id for e, r in events if e == "done"}
    assert {"rl/advice", "eval/advice/rl/step-5", "eval/advice/rl/step-6"} <= ran
    assert {"rl/rl_only", "eval/rl_only/rl/step-1", "eval/rl_only/rl/step-2"} <= ran
    assert "rl/baseline" not in ran
    arms = {a.name: a for a in summary.arms}
    advice = arms["advice"]
    assert [(c.step, c.phase, c.rl_step) for c in advice.checkpoints] == [
        (0, "train", None),
        (2, "train", None),
        (4, "train", None),
        (5, "rl", 1),
        (6, "rl", 2),
    ]
    assert advice.rl is not None and advice.rl["start_step"] == 4 and advice.rl["after"] == "train"
    assert advice.rl["judge_counts"]["ok"] == 4 and advice.rl["prompts"] == 3
    # the RL-only arm starts from the target and is not taken for the untrained baseline
    assert summary.baseline == "baseline"
    assert [(c.step, c.phase) for c in arms["rl_only"].checkpoints] == [(0, "train"), (1, "rl"), (2, "rl")]
    # the report plots the rates over RL steps from the starting snapshot on
    html = build_report(tmp_path / "exp" / "runs" / "summary.json", out_dir=tmp_path / "report").read_text()
    assert 'id="rl"' in html and 'class="rl-steps"' in html
    assert [int(m) for m in re.findall(r'data-arm="advice" data-rl-step="(\d+)"', html)] == [0, 1, 2]
    # a finished experiment re-runs without training or judging again
    JUDGE_CALLS.clear()
    _, events = _run(config)
    assert {e for e, _ in events} == {"cached"} and JUDGE_CALLS == []


def test_the_rl_example_is_a_diversity_ablation(tmp_path: Path) -> None:
    init_workspace(tmp_path / "demo", rl=True)
    config = load_config(tmp_path / "demo" / "teachwhy.yaml")
    arms = {a.name: a for a in config.arms}
    for plain, diverse in (("advice_rl", "advice_rl_diverse"), ("documents_rl", "documents_rl_diverse")):
        a, b = arms[plain], arms[diverse]
        assert a.data == b.data and a.rl is not None and b.rl is not None
        assert (a.rl.tool_rate, a.rl.system_prompt_rate) == (0.0, 0.0)
        assert (b.rl.tool_rate, b.rl.system_prompt_rate) == (0.5, 0.5)
        rest = {"tool_rate", "system_prompt_rate"}
        assert a.rl.model_dump(exclude=rest) == b.rl.model_dump(exclude=rest)


def test_rl_after_a_stage_the_arm_does_not_have_is_a_config_error(tmp_path: Path, tiny_target: Path) -> None:
    config = _workspace(tmp_path / "exp", tiny_target, rl="{after: sft, steps: 1}")
    # checked before any stage runs: nothing is generated or trained
    with pytest.raises(UserError, match=r"arms\.advice\.rl\.after.*names no training stage"):
        _run(config)
    assert not (tmp_path / "exp" / "runs" / "stages").exists()
