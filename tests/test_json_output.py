"""`--json`: one JSON document on stdout and nothing else; piped tables are not wrapped at 80 columns."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from inspect_ai.model import ModelOutput, ModelUsage, get_model
from typer.testing import CliRunner

from teachwhy.cli import app
from teachwhy.constitution import example_constitution_path, load_constitution
from teachwhy.data.records import make_record, provenance
from teachwhy.storage import write_jsonl

SRC = Path(__file__).parent.parent / "src"


def invoke_json(args: list[str]) -> Any:
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # fails if anything else was printed on stdout


def test_constitution_show_json_lists_every_principle() -> None:
    constitution = load_constitution(example_constitution_path())
    shown = invoke_json(["constitution", "show", str(example_constitution_path())])
    assert shown["sha256"] == constitution.sha256 and shown["title"] == constitution.title
    assert [p["id"] for p in shown["principles"]] == [p.id for p in constitution.principles]
    assert shown["principles"][0]["text"] == constitution.principles[0].text  # whole, not cut at 100


def test_data_stats_json_counts_kinds_tokens_and_coverage(tmp_path: Path) -> None:
    constitution = load_constitution(example_constitution_path())
    pid = constitution.principles[0].id
    prov = provenance(
        generator="stories",
        stage="write",
        index=0,
        constitution_sha256=constitution.sha256,
        principle_ids=[pid],
        generator_model="m",
        prompt_file="p",
        prompt_sha256="h",
        sampling={},
        seed=0,
    )
    tokens = {"tokenizer": "t", "count": 7, "exact": True}
    write_jsonl(
        tmp_path / "stories" / "stories.jsonl",
        [make_record(record_id="s1", kind="story", provenance=prov, text="Once.", tokens=tokens)],
    )
    stats = invoke_json(["data", "stats", str(tmp_path), "--constitution", str(example_constitution_path())])
    assert stats["kinds"] == {"story": {"records": 1, "tokens": 7, "uncounted": 0}}
    assert stats["coverage"][pid] == 1 and len(stats["uncovered"]) == len(constitution.principles) - 1


def _done_agent() -> Any:
    def answer(*_: Any) -> ModelOutput:
        out = ModelOutput.for_tool_call("mockllm/model", "done", {})
        out.usage = ModelUsage(input_tokens=1, output_tokens=1, total_tokens=2)
        return out

    return get_model("mockllm/model", custom_outputs=answer, memoize=False)


def test_eval_and_eval_compare_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import teachwhy.models

    monkeypatch.setattr(teachwhy.models, "role_model", lambda config, role, **_: _done_agent())
    config = tmp_path / "teachwhy.yaml"
    config.write_text(
        "workspace: runs\n"
        "eval: {families: [blackmail], split: heldout, limit: 1, max_turns: 2, policy: rule}\n"
    )
    runs = []
    for name in ("a", "b"):
        results = invoke_json(["eval", "--config", str(config), "--log-dir", str(tmp_path / name)])
        assert results["families"] == ["blackmail"] and results["policy"] == "rule"
        (total,) = [r for r in results["rows"] if r["condition"] == "all" and r.get("world", "all") == "all"]
        assert total["n"] + total["unscored"] + total["errors"] == 1
        runs.append(tmp_path / name)
    compared = invoke_json(["eval", "compare", str(runs[0]), str(runs[1])])
    assert compared["a"]["target_model"] == "mockllm/model"
    assert {c["family"] for c in compared["families"]} == {"blackmail"}  # the headline, then each category


def test_judge_check_json_reports_each_family(tmp_path: Path) -> None:
    checked = invoke_json(
        ["judge-check", "--rule-only", "--family", "framing", "--config", str(tmp_path / "none.yaml")]
    )
    assert checked["judge"] is None and checked["policy"] == "rule"
    assert checked["gate_recall"]["framing"]["n"] > 0 and "framing/false_accusation" in checked["rule_only"]


def test_piped_tables_are_not_wrapped_at_80_columns() -> None:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    env["PYTHONPATH"] = str(SRC)
    shown = subprocess.run(
        [sys.executable, "-m", "teachwhy", "constitution", "show", str(example_constitution_path())],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    widths = [len(line) for line in shown.stdout.splitlines()]
    assert 80 < max(widths) <= 200


def test_json_values_are_strict_json() -> None:
    from collections import Counter
    from dataclasses import dataclass

    from teachwhy.jsonout import to_jsonable

    @dataclass
    class Check:
        p_value: float
        confusion: Counter[tuple[str, str]]
        where: Path

    value = to_jsonable(Check(float("nan"), Counter({("harmful", "not_harmful"): 2}), Path("a/b")))
    assert value == {"p_value": None, "confusion": {"harmful->not_harmful": 2}, "where": "a/b"}
    json.dumps(value, allow_nan=False)
