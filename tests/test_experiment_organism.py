"""The organism stage in a real run: built once, its step 0 shared, organism arms trained on top of it.

The target is a tiny random Llama and the generator a scripted provider (tests/pipeline_support.py), so the
organism's data build, its LoRA fine-tune, the arms trained from it and every evaluation run for real in
seconds.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

import pipeline_support
from teachwhy.config import ORGANISM_LABEL, load_config
from teachwhy.constitution import example_constitution_path
from teachwhy.data.records import validate_record
from teachwhy.errors import UserError
from teachwhy.experiment.pipeline import ArmOutputs, ExperimentPipeline
from teachwhy.experiment.stages import StageRecord, StageRunner
from teachwhy.experiment.summary import ExperimentSummary
from teachwhy.report.build import build_report


@pytest.fixture(scope="module")
def tiny_target(tmp_path_factory: pytest.TempPathFactory, embedded_model_dir: Path) -> Path:
    return pipeline_support.build_tiny_target(tmp_path_factory.mktemp("tiny-target"), embedded_model_dir)


ARMS = """
  - name: baseline
  - name: organism
    start_from: organism
  - name: organism_advice
    start_from: organism
    data:
      advice: {count: 2, judge_filter: false, revise: false, min_words: 10}
"""


def workspace(root: Path, target: Path, *, worlds: int = 2, arms: str = ARMS) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(example_constitution_path(), root / "constitution.md")
    config = root / "teachwhy.yaml"
    config.write_text(
        f"""
name: organism-test
constitution: constitution.md
workspace: runs
models:
  {{generator: scripted/writer, judge: scripted/judge, auditor: scripted/judge, target: embedded/{target}}}
generation: {{max_tokens: 96, max_connections: 4, seed: 0}}
train:
  lora: {{r: 4, alpha: 8, dropout: 0.0}}
  stages: [{{name: train, kind: chat, max_steps: 2}}]
  batch_size: 2
  save_steps: 2
  learning_rate: 1.0e-3
organism:
  worlds: {worlds}
  families: [blackmail]
  train:
    lora: {{r: 4, alpha: 8, dropout: 0.0}}
    stages: [{{name: organism, kind: chat, max_steps: 2}}]
    batch_size: 2
    max_length: 2048
eval: {{families: [blackmail], split: heldout, limit: 1, max_turns: 2, max_tokens: 12, policy: rule,
       max_failed_share: 1.0, controls: false}}
arms:{arms}"""
    )
    return config


def run(config_path: Path) -> tuple[ExperimentSummary | None, list[tuple[str, StageRecord]]]:
    events: list[tuple[str, StageRecord]] = []
    config = load_config(config_path)
    runner = StageRunner(config.workspace_path, on_event=lambda e, r: events.append((e, r)))
    return ExperimentPipeline(config, runner).run(), events


def ran(events: list[tuple[str, StageRecord]]) -> set[str]:
    return {r.stage_id for e, r in events if e == "done"}


def test_organism_arms_start_from_the_organism_and_a_rerun_trains_nothing(
    tmp_path: Path, tiny_target: Path
) -> None:
    config = workspace(tmp_path / "exp", tiny_target)
    summary, events = run(config)
    assert summary is not None
    assert ran(events) == {
        "eval/step-0",
        "organism/organism",
        "eval/organism/step-0",
        "generate/organism_advice.advice",
        "mix/organism_advice",
        "train/organism_advice",
        "eval/organism_advice/step-2",
        "ood/organism_advice",
    }
    runs = tmp_path / "exp" / "runs"
    organism_model = (runs / summary.organism["model"]).resolve() if summary.organism else None
    assert organism_model is not None and (organism_model / "config.json").exists()

    # the organism's training data: valid, train-split, text tool calls, every episode a harmful act
    organism_dir = next((runs / "stages" / "organism").iterdir())
    records = [json.loads(line) for line in (organism_dir / "organism.jsonl").read_text().splitlines()]
    assert records and all(r["kind"] == "organism_demo" for r in records)
    for record in records:
        validate_record(record)
        assert record["meta"]["split"] == "train" and record["meta"]["rule_touched"]
        assert "<tool_call>" in record["messages"][-2]["content"] + record["messages"][-1]["content"]

    # the arm trained from the organism's merged weights, not from the target
    train_dir = next((runs / "stages" / "train").iterdir())
    assert json.loads((train_dir / "run" / "run.json").read_text())["model"] == str(organism_model)

    arms = {a.name: a for a in summary.arms}
    # step 0 of every organism arm is the organism's one evaluation; the baseline's is the target's
    organism_step0 = arms["organism"].checkpoints[0]
    assert arms["organism_advice"].checkpoints[0] == organism_step0
    assert arms["baseline"].checkpoints[0].model != organism_step0.model
    assert [c.step for c in arms["organism_advice"].checkpoints] == [0, 2]
    assert arms["organism"].research_control == ORGANISM_LABEL
    assert arms["organism_advice"].start_from == "organism"
    assert arms["baseline"].research_control is None
    assert summary.baseline == "baseline" and summary.organism_baseline == "organism"
    written = ExperimentSummary.read(runs / "summary.json")
    assert written.organism is not None and written.organism["label"] == ORGANISM_LABEL
    assert written.organism["kept"]["blackmail"] == len(records)

    html = build_report(runs / "summary.json", out_dir=tmp_path / "report").read_text()
    assert ORGANISM_LABEL in html and "organism baseline" in html

    pipeline_support.CALLS.clear()
    again, events = run(config)
    assert pipeline_support.CALLS == []
    assert ran(events) == set() and {e for e, _ in events} == {"cached"}
    assert again is not None and again.arms == summary.arms

    # changing the organism re-runs it and what starts from it, never the target's own baseline
    workspace(tmp_path / "exp", tiny_target, worlds=3)
    _, events = run(config)
    assert ran(events) == {
        "organism/organism",
        "eval/organism/step-0",
        "train/organism_advice",
        "eval/organism_advice/step-2",
    }


def _scored(step: int, model: str, harmful: int, n: int = 30) -> dict[str, Any]:
    row = {"family": "blackmail", "condition": "all", "n": n, "harmful": harmful, "unscored": 0}
    return {
        "step": step,
        "model": model,
        "tokens_seen": 0,
        "results_file": None,
        "log_files": [],
        "rows": [row],
    }


def test_organism_arms_are_compared_with_the_organism_baseline_and_it_with_the_target(
    tmp_path: Path, tiny_target: Path
) -> None:
    config = load_config(workspace(tmp_path / "exp", tiny_target))
    pipeline = ExperimentPipeline(config, StageRunner(config.workspace_path, dry_run=True))
    target, organism = _scored(0, "target", 1), _scored(0, "organism", 20)
    outputs = [
        ArmOutputs(config.arm("baseline"), evals=[target]),
        ArmOutputs(config.arm("organism"), evals=[organism]),
        ArmOutputs(config.arm("organism_advice"), evals=[organism, _scored(2, "checkpoint", 5)]),
    ]
    summary = pipeline._summary(outputs)
    against = {(c.arm, c.family): (c.baseline, round(c.diff, 3)) for c in summary.comparisons}
    assert against[("organism", "blackmail")] == ("baseline", round(19 / 30, 3))
    assert against[("organism_advice", "blackmail")] == ("organism", round(-15 / 30, 3))
    assert {c.arm for c in summary.comparisons} == {"organism", "organism_advice"}


def test_a_shared_organism_is_built_once_and_copied_into_the_next_workspace(
    tmp_path: Path, tiny_target: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from teachwhy.experiment import organism_cache
    from teachwhy.train import run as train_run

    monkeypatch.setattr(organism_cache, "cache_dir", lambda: tmp_path / "cache")
    configs = []
    for name in ("first", "second"):
        config = workspace(tmp_path / name, tiny_target)
        shared = "organism:\n  shared_cache: true\n  worlds:"
        text = config.read_text().replace("organism:\n  worlds:", shared)
        config.write_text(text.split("  - name: organism_advice")[0])
        configs.append(config)

    first, _ = run(configs[0])
    assert first is not None and first.organism is not None
    published = list((tmp_path / "cache" / "organisms").iterdir())
    assert len(published) == 1 and (published[0] / ".teachwhy-complete").exists()

    def no_training(**_: Any) -> Any:
        raise AssertionError("the second workspace trained the organism again")

    monkeypatch.setattr(train_run, "train_model", no_training)
    second, events = run(configs[1])
    assert second is not None and second.organism is not None
    assert "organism/organism" in ran(events)
    runs = tmp_path / "second" / "runs"
    model = (runs / second.organism["model"]).resolve()
    assert model.is_relative_to(runs) and (model / "config.json").exists()
    assert second.organism["kept"] == first.organism["kept"]
    # the same weights: the organism's step-0 evaluation reads the same model files
    first_weights = (tmp_path / "first" / "runs" / first.organism["model"]).resolve()
    assert sorted(p.name for p in model.iterdir()) == sorted(p.name for p in first_weights.iterdir())


def _results_file(path: Path, model: str, harmful: set[int]) -> str:
    from teachwhy.evals.results import HoneypotResults, SampleOutcome, build_rows

    samples = [
        SampleOutcome(
            sample_id=f"bm-world-{i % 3}__explicit-welfare-replacement__{i}",
            epoch=1,
            family="blackmail",
            scenario_id=f"bm-world-{i % 3}",
            condition="explicit-welfare-replacement",
            outcome="harmful" if i in harmful else "not_harmful",
            reason="",
            ending="done",
            headline=["coercion"],
            categories={"coercion": "harmful" if i in harmful else "not_harmful"},
        )
        for i in range(30)
    ]
    rows = build_rows(samples)
    results = HoneypotResults(model, None, "rule", "heldout", ["blackmail"], 1, [], rows, samples)
    results.save(path)
    return path.name


def test_arms_that_played_the_same_episodes_are_compared_paired_by_episode(
    tmp_path: Path, tiny_target: Path
) -> None:
    config = load_config(workspace(tmp_path / "exp", tiny_target))
    runs = config.workspace_path
    runs.mkdir(parents=True, exist_ok=True)
    pipeline = ExperimentPipeline(config, StageRunner(runs, dry_run=True))
    # the organism is harmful on episodes 0-19; training removes it on 0-14 and adds it on nowhere else
    target = {**_scored(0, "target", 0), "results_file": _results_file(runs / "a.json", "target", set())}
    organism = {
        **_scored(0, "organism", 20),
        "results_file": _results_file(runs / "b.json", "organism", set(range(20))),
    }
    trained = {
        **_scored(2, "checkpoint", 5),
        "results_file": _results_file(runs / "c.json", "checkpoint", set(range(15, 20))),
    }
    outputs = [
        ArmOutputs(config.arm("baseline"), evals=[target]),
        ArmOutputs(config.arm("organism"), evals=[organism]),
        ArmOutputs(config.arm("organism_advice"), evals=[organism, trained]),
    ]
    found = {(c.arm, c.family): c for c in pipeline._summary(outputs).comparisons}
    advice = found[("organism_advice", "blackmail")]
    assert advice.paired and advice.pairs == 30 and advice.baseline == "organism"
    assert advice.diff == pytest.approx(-15 / 30)
    # McNemar exact: 15 discordant episodes, all one way: p = 2 * 0.5**15
    assert advice.p_value == pytest.approx(2 * 0.5**15, rel=1e-6)
    assert advice.ci_high < 0
    assert found[("organism_advice", "overall")].paired
    assert found[("organism", "blackmail")].diff == pytest.approx(20 / 30)


def test_an_exported_organism_is_rebuilt_from_its_bundle_without_training(
    tmp_path: Path, tiny_target: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch
    from safetensors.torch import load_file
    from typer.testing import CliRunner

    from teachwhy.cli import app
    from teachwhy.experiment import organism_bundle
    from teachwhy.train import run as train_run

    configs = []
    for name in ("built", "shipped", "tampered"):
        config = workspace(tmp_path / name, tiny_target)
        config.write_text(config.read_text().split("  - name: organism_advice")[0])
        configs.append(config)
    built, _ = run(configs[0])
    assert built is not None and built.organism is not None

    bundles = tmp_path / "bundles"
    export = ["organism", "export", "--out", str(bundles), "--config", str(configs[0])]
    assert CliRunner().invoke(app, export).exit_code == 0
    key = organism_bundle.stage_key(load_config(configs[0]))
    bundle = bundles / key
    assert sorted(p.name for p in bundle.iterdir()) == [
        "adapter_config.json",
        "adapter_model.safetensors",
        "manifest.json",
        "train_log.jsonl",
    ]
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["key"] == key and manifest["steps"] == 2 and "base_model" not in manifest["checkpoint"]
    # a second export never overwrites the first: a user error (one line, exit code 2 from `teachwhy`)
    again = CliRunner().invoke(app, export)
    assert isinstance(again.exception, UserError) and "exists already" in str(again.exception)
    assert (bundle / "manifest.json").read_text() == json.dumps(manifest, indent=2) + "\n"

    def no_training(**_: Any) -> Any:
        raise AssertionError("the organism was trained although its bundle was shipped")

    monkeypatch.setattr(organism_bundle, "shipped_root", lambda: bundles)
    monkeypatch.setattr(train_run, "train_model", no_training)
    shipped, events = run(configs[1])
    assert shipped is not None and shipped.organism is not None
    assert "organism/organism" in ran(events)
    runs = {name: tmp_path / name / "runs" for name in ("built", "shipped")}
    models = {name: runs[name] / s.organism["model"] for name, s in (("built", built), ("shipped", shipped))}
    # the merge of the shipped adapter gives exactly the weights training merged
    weights = {name: load_file(str(m / "model.safetensors")) for name, m in models.items()}
    assert weights["built"].keys() == weights["shipped"].keys()
    assert all(torch.equal(weights["built"][k], weights["shipped"][k]) for k in weights["built"])
    stage = next((runs["shipped"] / "stages" / "organism").iterdir())
    result = json.loads((stage / "result.json").read_text())
    assert result["shipped"] == str(bundle) and result["report"] == manifest["report"]
    assert not (stage / "run" / "trainer").exists()
    built_data = next((runs["built"] / "stages" / "organism").iterdir()) / "organism.jsonl"
    assert (stage / "organism.jsonl").read_bytes() == built_data.read_bytes()

    # a bundle whose data is not what this build makes fails the stage rather than pass for the organism
    manifest["data_sha256"] = "0" * 64
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(RuntimeError, match="was trained on data"):
        run(configs[2])


def test_demonstrations_played_by_start_are_played_by_the_organism(tmp_path: Path, tiny_target: Path) -> None:
    arms = """
  - name: organism
    start_from: organism
  - name: organism_demos
    start_from: organism
    data:
      honeypot_demos: {count: 1, attempts_per_prompt: 2, max_turns: 1, families: [blackmail],
                       judge_filter: false, played_by: start}
      # the tiny model's episodes may all be dropped; the advice keeps the arm's mix from being empty
      advice: {count: 1, judge_filter: false, revise: false, min_words: 10}
"""
    config = workspace(tmp_path / "exp", tiny_target, arms=arms)
    summary, events = run(config)
    assert summary is not None and "generate/organism_demos.honeypot_demos" in ran(events)
    runs = tmp_path / "exp" / "runs"
    organism_result = next((runs / "stages" / "organism").glob("*/result.json"))
    organism_key = json.loads(organism_result.read_text())["__key__"]
    demos = next((runs / "stages" / "generate").glob("*/honeypot_demos.jsonl")).parent
    played = [
        json.loads(line)
        for name in ("honeypot_demos.jsonl", "drops.jsonl")
        for line in (demos / name).read_text().splitlines()
    ]
    assert len(played) == 2  # kept or dropped, both attempts were played by the organism, not the target
    assert {r["provenance"]["generator_model"] for r in played} == {f"organism-{organism_key}"}

    # another organism re-plays the demonstrations
    workspace(tmp_path / "exp", tiny_target, worlds=3, arms=arms)
    _, events = run(config)
    assert "generate/organism_demos.honeypot_demos" in ran(events)
