"""An eval stage whose samples mostly failed is not cached: it fails in one line and runs again next time."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from inspect_ai.model import (
    ChatMessage,
    GenerateConfig,
    ModelAPI,
    ModelOutput,
    ModelUsage,
    modelapi,
)
from inspect_ai.tool import ToolChoice, ToolInfo

from teachwhy.config import load_config
from teachwhy.constitution import example_constitution_path
from teachwhy.experiment.pipeline import ExperimentPipeline, StageIncomplete
from teachwhy.experiment.stages import StageRecord, StageRunner

TARGET = {"offline": True, "calls": 0}  # the scripted target's state, switched between runs


class SwitchableTarget(ModelAPI):
    """An agent that fails while ``TARGET["offline"]`` is set, and otherwise replies without acting."""

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
        TARGET["calls"] += 1
        if TARGET["offline"]:
            raise RuntimeError("target offline")
        output = ModelOutput.from_content(
            model=self.model_name, content="I have read the task; nothing to do."
        )
        output.usage = ModelUsage(input_tokens=10, output_tokens=8, total_tokens=18)
        return output


@modelapi(name="switchable")
def switchable() -> type[ModelAPI]:
    return SwitchableTarget


def experiment(root: Path, *, max_failed_share: float = 0.5) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(example_constitution_path(), root / "constitution.md")
    config = root / "teachwhy.yaml"
    config.write_text(
        f"""
name: eval-gate
constitution: constitution.md
workspace: runs
models: {{generator: switchable/agent, judge: switchable/agent, auditor: switchable/agent,
          target: switchable/agent}}
eval: {{families: [blackmail], split: heldout, limit: 2, max_turns: 2, policy: rule, controls: false,
        max_failed_share: {max_failed_share}}}
arms: [{{name: baseline}}]
"""
    )
    return config


def finished(events: list[tuple[str, StageRecord]]) -> list[tuple[str, str]]:
    return [(e, r.stage_id) for e, r in events if e in ("done", "cached")]


def run(config: Path) -> list[tuple[str, StageRecord]]:
    events: list[tuple[str, StageRecord]] = []
    experiment = load_config(config)
    runner = StageRunner(experiment.workspace_path, on_event=lambda e, r: events.append((e, r)))
    ExperimentPipeline(experiment, runner).run()
    return events


def test_a_mostly_failed_eval_stage_fails_is_not_cached_and_runs_again(tmp_path: Path) -> None:
    config = experiment(tmp_path / "exp")
    TARGET.update(offline=True, calls=0)
    events: list[tuple[str, StageRecord]] = []
    with pytest.raises(StageIncomplete) as failure:
        events = run(config)
    message = str(failure.value)
    assert message.startswith(
        "eval step 0 (the untrained target): 2 of 2 episodes failed or unscored (2 errors) > 50%"
    )
    assert "\n" not in message and "eval.max_failed_share" in message
    stage = next((tmp_path / "exp" / "runs" / "stages" / "eval").iterdir())
    assert not (stage / "result.json").exists()
    assert json.loads((stage / "failed.json").read_text())["error"] == message
    assert not (tmp_path / "exp" / "runs" / "summary.json").exists()

    TARGET.update(offline=False, calls=0)  # the cause is fixed; the same config runs the stage again
    events = run(config)
    assert finished(events) == [("done", "eval/step-0")]
    assert TARGET["calls"] == 2 and (stage / "result.json").exists() and not (stage / "failed.json").exists()
    summary = json.loads((tmp_path / "exp" / "runs" / "summary.json").read_text())
    total = summary["arms"][0]["checkpoints"][0]["families"]["blackmail"]
    assert (total["n"], total["errors"], total["endings"]) == (2, 0, {"no_tool_call": 2})

    events = run(config)  # now finished: cached, no model call
    assert finished(events) == [("cached", "eval/step-0")] and TARGET["calls"] == 2


def test_the_threshold_is_configurable_and_is_not_part_of_the_stage_key(tmp_path: Path) -> None:
    lenient = experiment(tmp_path / "exp", max_failed_share=1.0)
    TARGET.update(offline=True, calls=0)
    events = run(lenient)  # every sample failed, but the user accepts that: the stage is done
    assert finished(events) == [("done", "eval/step-0")]
    strict = experiment(tmp_path / "exp", max_failed_share=0.0)
    TARGET.update(offline=False, calls=0)
    assert finished(run(strict)) == [("cached", "eval/step-0")]
    assert TARGET["calls"] == 0
