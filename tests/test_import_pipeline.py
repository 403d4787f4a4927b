"""Imported data as an arm's source: imported, augmented, mixed, trained and evaluated; `status --json`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

import pipeline_support
from teachwhy.cli import app
from teachwhy.config import load_config
from teachwhy.constitution import example_constitution_path
from teachwhy.errors import UserError
from teachwhy.experiment.pipeline import ExperimentPipeline
from teachwhy.experiment.stages import StageRecord, StageRunner
from teachwhy.storage import read_jsonl

CONFIG = """
name: import-test
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
  stages: [{{name: train, kind: mixed, max_steps: 2}}]
  batch_size: 2
  max_length: 512
  save_steps: 2
  learning_rate: 1.0e-3{report_to}
eval: {{families: [blackmail], split: heldout, limit: 1, max_turns: 2, max_tokens: 12, policy: rule,
  checkpoints: last, max_failed_share: 1.0}}
arms:
  - name: baseline
  - name: mine
    data:
      imported: {{path: chats.jsonl}}
      augment: {{source: imported, tool_rate: 1.0, system_prompt_rate: 0.0}}
"""


def chats(n: int) -> str:
    rows = [
        {
            "conversations": [
                {"from": "human", "value": f"Should I report incident {i} to my manager?"},
                {
                    "from": "gpt",
                    "value": f"Yes: incident {i} affects others; hiding it removes their say.",
                },
            ]
        }
        for i in range(n)
    ]
    return "".join(json.dumps(r) + "\n" for r in rows)


def status(config: Path) -> dict[str, str]:
    result = CliRunner().invoke(app, ["status", "--config", str(config), "--json"])
    assert result.exit_code == 0, result.output
    return {s["stage_id"]: s["state"] for s in json.loads(result.stdout)["stages"]}


def test_an_imported_source_feeds_augment_mix_training_and_evaluation(
    tmp_path: Path, embedded_model_dir: Path
) -> None:
    target = pipeline_support.build_tiny_target(tmp_path / "tiny", embedded_model_dir)
    root = tmp_path / "exp"
    root.mkdir()
    shutil.copyfile(example_constitution_path(), root / "constitution.md")
    (root / "chats.jsonl").write_text(chats(4))
    config = root / "teachwhy.yaml"
    config.write_text(CONFIG.format(target=target, report_to=""))

    events: list[tuple[str, StageRecord]] = []
    runner = StageRunner(load_config(config).workspace_path, on_event=lambda e, r: events.append((e, r)))
    summary = ExperimentPipeline(load_config(config), runner).run()
    assert summary is not None
    done = {r.stage_id for e, r in events if e == "done"}
    assert {"generate/mine.imported", "generate/mine.augment", "mix/mine", "train/mine"} <= done
    assert "eval/mine/step-2" in done

    (mine,) = [a for a in summary.arms if a.name == "mine"]
    assert mine.records_by_source == {"augment": 4} and mine.tokens_by_source["augment"] > 0
    mixed = read_jsonl(root / "runs" / mine.data_files["mix"])
    assert {r["kind"] for r in mixed} == {"augmented"}
    assert {r["provenance"]["imported"]["file"] for r in mixed} == {"chats.jsonl"}
    assert {r["provenance"]["imported"]["format"] for r in mixed} == {"sharegpt"}

    assert set(status(config).values()) == {"done"}
    config.write_text(CONFIG.format(target=target, report_to="\n  report_to: tensorboard"))
    assert set(status(config).values()) == {"done"}  # a tracker does not make training stale

    (root / "chats.jsonl").write_text(chats(5))  # new content, same path: imported again
    states = status(config)
    assert states["generate/mine.imported"] == "stale" and states["train/mine"] == "blocked"
    assert states["eval/step-0"] == "done"


def test_a_missing_imported_file_is_a_user_error_naming_the_setting(tmp_path: Path) -> None:
    shutil.copyfile(example_constitution_path(), tmp_path / "constitution.md")
    config = tmp_path / "teachwhy.yaml"
    config.write_text(CONFIG.format(target=tmp_path, report_to=""))
    result = CliRunner().invoke(app, ["status", "--config", str(config), "--json"])
    assert isinstance(result.exception, UserError)
    assert "arms.mine.data.imported.path: file not found" in str(result.exception)
    assert result.stdout == ""
