"""One tiny end-to-end run of the chat-data generators on the real embedded model, through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from teachwhy.cli import app
from teachwhy.workspace import init_workspace

CONFIG = """
generation: {temperature: 0.0, max_tokens: 24, max_connections: 2, seed: 0, cache: false}
arms:
  - name: tiny
    data:
      advice: {count: 1, revise: false, judge_filter: false, min_words: 3, dilemma_max_tokens: 24,
               max_tokens: 24}
      honeypot_demos: {count: 1, attempts_per_prompt: 1, max_turns: 1, judge_filter: false, max_tokens: 24,
                       families: [research_sabotage]}
      augment: {source: honeypot_demos, tool_rate: 1.0, system_prompt_rate: 1.0}
"""


@pytest.mark.embedded
def test_advice_and_honeypot_demos_run_end_to_end_on_the_embedded_model(
    tmp_path: Path, embedded_model_dir: Path
) -> None:
    init_workspace(tmp_path)
    config = tmp_path / "teachwhy.yaml"
    config.write_text(CONFIG)
    runner = CliRunner()
    for name in ("advice", "honeypot-demos"):
        out = tmp_path / "data" / name.replace("-", "_")
        args = ["data", "generate", name, "--config", str(config), "--arm", "tiny", "--out", str(out)]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        summary = json.loads((out / "summary.json").read_text())
        assert summary["complete"] and summary["requested"] == 1
        # a 24-token budget usually cuts the weak model off: whatever happened, the item is kept or counted
        kept = (out / f"{name.replace('-', '_')}.jsonl").read_text().count("\n")
        assert kept + sum(summary["drops"].values()) == 1
    acceptance = json.loads((tmp_path / "data" / "honeypot_demos" / "acceptance.json").read_text())
    assert acceptance["research_sabotage"]["attempts"] == 1
    augmented = tmp_path / "data" / "augment"
    source = tmp_path / "data" / "honeypot_demos" / "honeypot_demos.jsonl"
    result = runner.invoke(
        app,
        [
            "data",
            "generate",
            "augment",
            "--config",
            str(config),
            "--arm",
            "tiny",
            "--input",
            str(source),
            "--out",
            str(augmented),
        ],
    )
    assert result.exit_code == 0, result.output
    assert (augmented / "augment.jsonl").read_text().count("\n") == source.read_text().count("\n")
