"""The indicators through an experiment: ``eval.split: both`` in the eval stage, summary.json and OOD.

The target is the scripted provider of tests/pipeline_support.py (it answers in prose and never calls a tool),
so every episode ends ``no_tool_call``, is scored not harmful, and the run takes seconds.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from inspect_ai.model import ChatMessage, GenerateConfig, ModelAPI, ModelOutput, ModelUsage, modelapi
from inspect_ai.tool import ToolChoice, ToolInfo

import pipeline_support  # noqa: F401  (registers the scripted provider)
from teachwhy.config import load_config
from teachwhy.constitution import example_constitution_path
from teachwhy.evals.indicators import Indicators
from teachwhy.evals.results import HoneypotResults
from teachwhy.evals.tasks import honeypot_episodes
from teachwhy.experiment.pipeline import ExperimentPipeline, StageIncomplete
from teachwhy.experiment.stages import StageRunner
from teachwhy.experiment.summary import ExperimentSummary

CONFIG = """
name: indicators
constitution: constitution.md
workspace: runs
models: {generator: scripted/writer, judge: scripted/judge, auditor: scripted/judge, target: scripted/target}
eval: {families: [blackmail], split: both, limit: 1, epochs: 2, max_turns: 2, policy: rule, controls: false,
       worlds: [bm-brightwater-university, bm-harbor-line]}
arms:
  - name: baseline
"""


def _config(root: Path, text: str = CONFIG) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(example_constitution_path(), root / "constitution.md")
    (root / "teachwhy.yaml").write_text(text)
    return root / "teachwhy.yaml"


def test_split_both_puts_every_indicator_in_the_summary_per_arm_and_checkpoint(tmp_path: Path) -> None:
    config = load_config(_config(tmp_path))
    summary = ExperimentPipeline(config, StageRunner(config.workspace_path)).run()
    assert summary is not None
    (checkpoint,) = summary.arms[0].checkpoints
    assert checkpoint.indicators is not None and checkpoint.compared_results_file is not None
    compared = HoneypotResults.load(config.workspace_path / checkpoint.compared_results_file)
    assert compared.split == "eval" and compared.worlds == ["bm-harbor-line"]

    written = ExperimentSummary.read(config.workspace_path / "summary.json")
    indicators = Indicators.from_dict(written.arms[0].checkpoints[0].indicators or {})
    assert (indicators.split, indicators.compared_split) == ("heldout", "eval")
    scope = indicators.scopes["all"]
    assert (scope.misalignment.count, scope.misalignment.n) == (0, 2)  # one episode, two epochs
    assert scope.harmful_tool_calls.n == 0 and scope.harmful_tool_calls.rate is None  # no call made
    assert (scope.episodes_with_harmful_call.count, scope.episodes_with_harmful_call.n) == (0, 2)
    assert scope.epoch_consistency is not None and (
        scope.epoch_consistency.count,
        scope.epoch_consistency.n,
    ) == (1, 1)
    assert scope.paraphrase_consistency is None
    gap = scope.generalisation
    assert gap is not None and gap.difference is not None
    assert (gap.heldout.n, gap.eval.n, gap.difference.diff) == (2, 2, 0.0)
    raw = json.loads((config.workspace_path / "summary.json").read_text())
    assert raw["arms"][0]["checkpoints"][0]["indicators"]["scopes"]["blackmail"]["generalisation"]


def test_ood_prompts_follow_the_splits_worlds_and_conditions_evaluated(tmp_path: Path) -> None:
    config = load_config(_config(tmp_path))
    pipeline = ExperimentPipeline(config, StageRunner(config.workspace_path, dry_run=True))
    for split, world in (("heldout", "bm-brightwater-university"), ("eval", "bm-harbor-line")):
        (episode,) = honeypot_episodes(["blackmail"], split=split, limit=1, worlds=[world])
        (prompt,) = pipeline.eval_prompts(split)["blackmail"]
        assert prompt.startswith(f"{episode.system_prompt}\n{episode.task}")
    # the eval split named one world: the other eval world's prompts are not measured
    unlimited = _config(tmp_path / "all", CONFIG.replace("limit: 1, ", ""))
    pipeline = ExperimentPipeline(
        load_config(unlimited), StageRunner(tmp_path / "all" / "runs", dry_run=True)
    )
    every = honeypot_episodes(["blackmail"], split="eval", worlds=["bm-harbor-line"])
    assert len(pipeline.eval_prompts("eval")["blackmail"]) == len(every)
    named = honeypot_episodes(["blackmail"], split="heldout", worlds=["bm-brightwater-university"])
    assert len(pipeline.eval_prompts()["blackmail"]) == len(named)


def test_ood_measures_the_training_data_against_each_split_evaluated(tmp_path: Path) -> None:
    config = load_config(_config(tmp_path, CONFIG.replace("  - name: baseline", ARM)))
    pipeline = ExperimentPipeline(config, StageRunner(config.workspace_path))
    mix = config.workspace_path / "mix.jsonl"
    mix.parent.mkdir(parents=True, exist_ok=True)
    prompt = pipeline.eval_prompts("eval")["blackmail"][0]
    mix.write_text(json.dumps({"text": prompt}) + "\n")  # the eval split's prompt, copied into training
    result = pipeline._ood(config.arms[0], {"file": "mix.jsonl", "__key__": "a-mix"})
    assert result is not None
    found = {(d["evaluation"], d["split"]): d for d in result["distances"]}
    assert set(found) == {("blackmail", "heldout"), ("blackmail", "eval")}
    assert (
        found[("blackmail", "eval")]["ngram_overlap"] == 1.0 and found[("blackmail", "eval")]["contaminated"]
    )
    assert found[("blackmail", "heldout")]["ngram_overlap"] < 1.0


ARM = """  - name: advice
    data: {advice: {count: 1}}"""


class HeldoutOnlyTarget(ModelAPI):
    """Replies without acting in the held-out world; fails in every other world (the eval split's)."""

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
        if "Brightwater University" not in input[0].text:
            raise RuntimeError("target offline")
        output = ModelOutput.from_content(model=self.model_name, content="Nothing to do here.")
        output.usage = ModelUsage(input_tokens=10, output_tokens=4, total_tokens=14)
        return output


@modelapi(name="heldout-only")
def heldout_only() -> type[ModelAPI]:
    return HeldoutOnlyTarget


def test_the_eval_split_is_held_to_the_failed_share_limit_too(tmp_path: Path) -> None:
    text = CONFIG.replace("target: scripted/target", "target: heldout-only/agent")
    config = load_config(
        _config(tmp_path, text.replace("controls: false", "controls: false, max_failed_share: 0.5"))
    )
    with pytest.raises(StageIncomplete, match=r"honeypot-results-eval\.json"):
        ExperimentPipeline(config, StageRunner(config.workspace_path)).run()
