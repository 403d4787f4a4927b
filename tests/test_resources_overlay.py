"""The user overlay: folders laid out like the package's data add to or replace its files, everywhere.

A world, a prompt and a calibration case written in a workspace folder are used by the loaders, the Inspect
task (``-T resources=...``), data generation, ``judge-check`` and ``eval scenarios``, with the package files
untouched; stage keys hash the files each stage reads, overlay files included.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from inspect_ai import eval as inspect_eval
from inspect_ai.model import GenerateConfig, ModelOutput
from typer.testing import CliRunner

import pipeline_support
from teachwhy.cli import app
from teachwhy.config import StoriesSource, load_config
from teachwhy.constitution import example_constitution_path, load_constitution
from teachwhy.data.stories import generate_stories
from teachwhy.data.tokens import TokenCounter, counter_for_role
from teachwhy.errors import UserError
from teachwhy.evals.calibration import CALIBRATION_DIR
from teachwhy.evals.scenario import SCENARIO_DIR, load_scenarios
from teachwhy.experiment.data_keys import declared_files
from teachwhy.experiment.pipeline import ExperimentPipeline
from teachwhy.experiment.stages import StageRunner
from teachwhy.prompts import load_prompt, prompts_dir
from teachwhy.resources import check_overlays, overlay_files, resource_path, use_resources
from teachwhy.storage import content_hash, read_jsonl
from test_data_support import IDEAS, prose, quiet_config, reply, scripted

USER_WORLD = "bm-user-world"
MARKER = "Set the story aboard a lighthouse tender."


def package_bytes() -> dict[str, bytes]:
    """Every packaged world, calibration file and prompt, to show the package stays untouched."""
    files = [*SCENARIO_DIR.rglob("*.*"), *CALIBRATION_DIR.glob("*.*"), *prompts_dir().rglob("*.*")]
    return {str(p): p.read_bytes() for p in files if p.is_file()}


def write_world(root: Path, *, title: str = "User World -- the quartermaster's letters") -> Path:
    """A new blackmail world in ``root``'s ``scenarios/``: a packaged world under a new id and title."""
    source = (SCENARIO_DIR / "blackmail" / "harbor_line.md").read_text(encoding="utf-8")
    text = re.sub(r"(?m)^id: .*$", f"id: {USER_WORLD}", source, count=1)
    text = re.sub(r"(?m)^title: .*$", f"title: {title}", text, count=1)
    text = re.sub(r"(?m)^split: .*$", "split: eval", text, count=1)
    path = root / "scenarios" / "blackmail" / "user_world.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def write_case(root: Path) -> Path:
    """A calibration case on the overlay world: the shipped first blackmail case (an explicit threat to the
    decider), deliberately labelled not harmful, so the rule's verdict shows up as misclassified."""
    shipped = yaml.safe_load((CALIBRATION_DIR / "blackmail.yaml").read_text(encoding="utf-8"))
    case = dict(shipped["cases"][0], id="user-001", world=USER_WORLD)
    case["labels"] = {**case["labels"], "coercion": "not_harmful"}
    path = root / "calibration" / "user_cases.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"family": "blackmail", "cases": [case]}), encoding="utf-8")
    return path


def write_prompt(root: Path) -> Path:
    """``prompts/stories_write.md`` replaced: the package's prompt with one more instruction."""
    path = root / "prompts" / "stories_write.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text((prompts_dir() / "stories_write.md").read_text(encoding="utf-8") + f"\n{MARKER}\n")
    return path


def test_an_overlay_world_is_added_and_a_file_of_the_same_path_replaces_the_packaged_one(
    tmp_path: Path,
) -> None:
    before = package_bytes()
    write_world(tmp_path / "mine")
    replaced = tmp_path / "mine" / "scenarios" / "blackmail" / "kestrel_bank.md"
    text = (SCENARIO_DIR / "blackmail" / "kestrel_bank.md").read_text(encoding="utf-8")
    replaced.write_text(re.sub(r"(?m)^title: .*$", "title: Kestrel, the user's version", text, count=1))

    assert USER_WORLD not in {s.id for s in load_scenarios()}
    with use_resources([tmp_path / "mine"]):
        worlds = {s.id: s for s in load_scenarios(families=["blackmail"])}
        assert worlds[USER_WORLD].path.endswith("user_world.md")
        assert worlds["bm-kestrel-bank"].title == "Kestrel, the user's version"
        assert len(overlay_files("scenarios")) == 2
    assert {s.id: s for s in load_scenarios()}["bm-kestrel-bank"].title != "Kestrel, the user's version"
    assert package_bytes() == before


def test_the_inspect_task_parameter_plays_the_overlay_world(tmp_path: Path) -> None:
    write_world(tmp_path / "mine")
    target = scripted([reply("I will finish the dispatch summary and stop here.")])
    logs = inspect_eval(
        "teachwhy/blackmail",
        model=target,
        task_args={
            "resources": str(tmp_path / "mine"),
            "worlds": USER_WORLD,
            "limit": 1,
            "max_turns": 1,
            "policy": "rule",
        },
        log_dir=str(tmp_path / "logs"),
        display="none",
    )
    assert logs[0].status == "success", logs[0].error
    (sample,) = logs[0].samples or []
    assert str(sample.id).startswith(f"{USER_WORLD}:")
    assert logs[0].eval.metadata is not None
    assert logs[0].eval.metadata["resources"] == [str((tmp_path / "mine").resolve())]


@pytest.fixture(scope="module")
def counter(embedded_model_dir: Path) -> TokenCounter:
    from teachwhy.config import RoleModel

    return counter_for_role(RoleModel())


def test_an_overlay_prompt_replaces_the_package_prompt_in_data_generation(
    tmp_path: Path, counter: TokenCounter
) -> None:
    before = package_bytes()
    prompt_file = write_prompt(tmp_path / "mine")
    sent: list[str] = []

    def script(messages: list[Any], tools: list[Any], choice: Any, config: GenerateConfig) -> ModelOutput:
        sent.append(messages[-1].text)
        return reply(IDEAS) if "Propose" in messages[-1].text else reply(prose(int(config.seed or 0)))

    constitution = load_constitution(example_constitution_path())
    with use_resources([tmp_path / "mine"]):
        assert load_prompt("stories_write").path == prompt_file.resolve()
        generate_stories(
            quiet_config(),
            StoriesSource(count=2, min_words=20, judge_filter=False),
            constitution,
            tmp_path / "out",
            model=scripted(script),
            counter=counter,
        )
    assert len(sent) == 2 and all(MARKER in text for text in sent)
    for record in read_jsonl(tmp_path / "out" / "stories.jsonl"):
        assert record["provenance"]["prompt_file"] == str(prompt_file.resolve())
        assert record["provenance"]["prompt_sha256"] == content_hash(prompt_file.read_bytes())
    assert load_prompt("stories_write").path == prompts_dir() / "stories_write.md"
    assert package_bytes() == before


def _judge_check(args: list[str]) -> dict[str, Any]:
    result = CliRunner().invoke(app, ["judge-check", "--rule-only", "--family", "blackmail", "--json", *args])
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.output)
    return data


def test_judge_check_uses_a_calibration_case_from_the_resources_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = package_bytes()
    write_world(tmp_path / "mine")
    write_case(tmp_path / "mine")
    monkeypatch.chdir(tmp_path)
    shipped = _judge_check(["-c", "absent.yaml"])
    assert not any(m.startswith("user-001") for m in shipped["misclassified"])

    by_option = _judge_check(["-c", "absent.yaml", "--resources", "mine"])
    assert by_option["cases"] == shipped["cases"] + 1
    assert any(m.startswith("user-001/coercion: label not_harmful") for m in by_option["misclassified"])

    (tmp_path / "teachwhy.yaml").write_text("name: overlay\nresources: [mine]\n")
    assert _judge_check(["-c", "teachwhy.yaml"]) == by_option
    assert package_bytes() == before


def test_scenarios_list_and_check_include_the_overlay_worlds(tmp_path: Path) -> None:
    write_world(tmp_path / "mine")
    listed = CliRunner().invoke(
        app, ["eval", "scenarios", "list", "--json", "--resources", str(tmp_path / "mine")]
    )
    assert listed.exit_code == 0, listed.output
    assert USER_WORLD in {w["id"] for w in json.loads(listed.output)}
    checked = CliRunner().invoke(app, ["eval", "scenarios", "check", "--resources", str(tmp_path / "mine")])
    assert checked.exit_code == 0, checked.output


def _keys(config: Path) -> dict[str, str | None]:
    loaded = load_config(config)
    runner = StageRunner(loaded.workspace_path, dry_run=True)
    ExperimentPipeline(loaded, runner).run()
    return {r.stage_id: r.key for r in runner.records if r.key is not None}


def test_stage_keys_hash_exactly_the_overlay_files_each_stage_reads(tmp_path: Path) -> None:
    root = tmp_path / "exp"
    root.mkdir()
    (root / "constitution.md").write_bytes(example_constitution_path().read_bytes())
    yaml_text = pipeline_support.experiment_yaml(tmp_path / "no-target")
    (root / "teachwhy.yaml").write_text(yaml_text)
    plain = _keys(root / "teachwhy.yaml")
    watched = {"generate/advice.advice", "generate/stories.stories", "eval/step-0", "controls/rule"}
    assert watched <= set(plain)

    (root / "mine").mkdir()
    (root / "teachwhy.yaml").write_text(yaml_text + "resources: [mine]\n")
    assert _keys(root / "teachwhy.yaml") == plain  # an empty overlay changes nothing

    write_prompt(root / "mine")
    with_prompt = _keys(root / "teachwhy.yaml")
    changed = {k for k in watched if with_prompt[k] != plain[k]}
    assert changed == {"generate/stories.stories"}

    world = write_world(root / "mine")
    with_world = _keys(root / "teachwhy.yaml")
    assert {k for k in watched if with_world[k] != with_prompt[k]} == {"eval/step-0", "controls/rule"}

    world.write_text(world.read_text().replace("User World", "User World, edited"))
    edited = _keys(root / "teachwhy.yaml")
    assert {k for k in watched if edited[k] != with_world[k]} == {"eval/step-0", "controls/rule"}


def test_a_bad_overlay_is_one_error_naming_the_folder_or_file(tmp_path: Path) -> None:
    (tmp_path / "mine" / "worlds").mkdir(parents=True)
    with pytest.raises(UserError, match=r"mine/worlds: resources\[0\]: not a resources folder"):
        check_overlays([tmp_path / "mine", tmp_path])
    with pytest.raises(UserError, match="resources folder not found"), use_resources([tmp_path / "absent"]):
        pass
    (tmp_path / "mine" / "worlds").rmdir()
    bad = write_world(tmp_path / "mine")
    bad.write_text(bad.read_text().replace("split: eval", "split: sometimes"))
    with use_resources([tmp_path / "mine"]), pytest.raises(UserError) as error:
        load_scenarios()
    assert str(error.value).startswith(f"{bad}: split:")
    assert not resource_path("scenarios", "blackmail/user_world.md").exists()  # outside, the package only


@pytest.fixture(scope="module")
def tiny_target(tmp_path_factory: pytest.TempPathFactory, embedded_model_dir: Path) -> Path:
    return pipeline_support.build_tiny_target(tmp_path_factory.mktemp("tiny-target"), embedded_model_dir)


def test_teachwhy_run_evaluates_the_overlay_world_and_generates_with_the_overlay_prompt(
    tmp_path: Path, tiny_target: Path
) -> None:
    before = package_bytes()
    root = tmp_path / "exp"
    root.mkdir()
    (root / "constitution.md").write_bytes(example_constitution_path().read_bytes())
    # the held-out blackmail world replaced by the user's: the run's only blackmail held-out world
    world = write_world(root / "mine")
    text = world.read_text().replace("split: eval", "split: heldout")
    world.unlink()
    (root / "mine" / "scenarios" / "blackmail" / "brightwater_university.md").write_text(text)
    write_prompt(root / "mine")
    config = pipeline_support.experiment_yaml(tiny_target).split("arms:")[0]
    config = config.replace("max_steps: 4", "max_steps: 2")
    # the held-out split has other blackmail worlds too: the run names the user's
    config = config.replace("policy: rule,", f"policy: rule, checkpoints: last, worlds: [{USER_WORLD}],")
    config += "resources: [mine]\narms:\n  - name: baseline\n  - name: stories\n"
    config += "    data: {stories: {count: 2, judge_filter: false, min_words: 10}}\n"
    (root / "teachwhy.yaml").write_text(config)

    result = CliRunner().invoke(app, ["run", "-c", str(root / "teachwhy.yaml")])
    assert result.exit_code == 0, result.output
    stages = root / "runs" / "stages"
    evaluated = [json.loads(p.read_text()) for p in (stages / "eval").glob("*/honeypot-results.json")]
    assert len(evaluated) == 2  # the untrained target and the stories arm's checkpoint
    assert all({s["scenario_id"] for s in results["samples"]} == {USER_WORLD} for results in evaluated)
    (stories,) = (stages / "generate").glob("*/stories.jsonl")
    for record in read_jsonl(stories):
        assert record["provenance"]["prompt_file"].endswith("mine/prompts/stories_write.md")
    assert package_bytes() == before

    # every stage recorded the data files it read; each is among those its key hashes
    results = {
        r["__stage__"]: r for r in map(json.loads, map(Path.read_text, stages.glob("*/*/result.json")))
    }
    assert {"generate/stories.stories", "eval/step-0", "controls/rule", "ood/stories"} <= set(results)
    with use_resources([root / "mine"]):
        for stage_id, result in results.items():
            kind, _, name = stage_id.partition("/")
            declared = declared_files(f"generate.{name.rpartition('.')[2]}" if kind == "generate" else kind)
            assert set(result["__data_files__"]) <= set(declared), stage_id
    used = results["eval/step-0"]["__data_files__"]
    assert used["scenarios/blackmail/brightwater_university.md"].endswith(
        "mine/scenarios/blackmail/brightwater_university.md"
    )
    assert used["rubrics/blackmail.md"] == "package"
    assert results["generate/stories.stories"]["__data_files__"]["prompts/stories_write.md"].startswith(
        str(root)
    )
    assert results["train/stories"]["__data_files__"] == {}


def test_the_assessment_task_parameter_adds_a_seed_from_the_overlay(tmp_path: Path) -> None:
    from scripted import scripted_model, tool_call

    seeds = tmp_path / "mine" / "seeds"
    seeds.mkdir(parents=True)
    (seeds / "my_seed.md").write_text(
        "---\ntags: [mine]\ndescription: a seed of my own\n---\n\nAsk the target for a weekend plan.\n"
    )
    logs = inspect_eval(
        "teachwhy/assessment",
        task_args={"select": "my_seed", "only": "concerning", "resources": str(tmp_path / "mine")},
        model=scripted_model([]),
        model_roles={"auditor": scripted_model([tool_call("end_audit", {})]), "judge": scripted_model([])},
        display="none",
        log_dir=str(tmp_path / "logs"),
        score_display=False,
    )
    assert logs[0].status == "success", logs[0].error
    (sample,) = logs[0].samples or []
    assert sample.id == "my_seed"


def test_each_generator_reads_only_data_files_its_stage_key_hashes(tmp_path: Path) -> None:
    """The declared file patterns of every generator (teachwhy.experiment.data_keys) cover what it reads."""
    from data2_scripts import prompt_model, words
    from teachwhy.config import (
        AdviceSource,
        AugmentSource,
        DocumentsSource,
        HoneypotDemosSource,
        RewriteSource,
    )
    from teachwhy.data.advice import generate_advice
    from teachwhy.data.augment import generate_augment
    from teachwhy.data.documents import generate_documents
    from teachwhy.data.honeypot_demos import generate_honeypot_demos
    from teachwhy.data.rewrite import generate_rewrite
    from teachwhy.resources import track_resources
    from test_data2_advice import _generator as advice_model
    from test_data2_advice import _judge as advice_judge
    from test_data2_honeypot import FAMILIES, _agent, _episodes
    from test_data2_rewrite import DONE, SEND, _demo
    from test_data_generate import _judge as documents_judge
    from test_data_support import generator_script

    constitution = load_constitution(example_constitution_path())
    demo = _demo("good", ["Sending the update.\n" + SEND, DONE])
    deliberation = words("delib", 45) + "\n"

    def rewriter(messages: list[Any], config: GenerateConfig) -> str:
        original = messages[-1].text.split("<reply>\n", 1)[1].split("\n</reply>", 1)[0]
        return f"good {deliberation}{original}"

    runs: dict[str, Any] = {
        "documents": lambda out: generate_documents(
            quiet_config(),
            DocumentsSource(count=2, ideas_per_type=2, min_words=20),
            constitution,
            out,
            model=scripted(generator_script()),
            judge=documents_judge(),
        ),
        "advice": lambda out: generate_advice(
            quiet_config(),
            AdviceSource(count=2, reasoning=True, revise=True, min_words=20),
            constitution,
            out,
            model=advice_model(),
            judge=advice_judge(),
        ),
        "honeypot_demos": lambda out: generate_honeypot_demos(
            quiet_config(),
            HoneypotDemosSource(count=3, policy="rule", tool_format="text", max_turns=3, dedup=False),
            constitution,
            out,
            model=_agent(_episodes(FAMILIES, 3), {}),
        ),
        "rewrite": lambda out: generate_rewrite(
            quiet_config(),
            RewriteSource(count=1, min_words=40, dedup=False),
            constitution,
            out,
            records=[demo],
            model=prompt_model(rewriter),
            judge=prompt_model(lambda m, c: "same_action: yes\ncites_principles: yes"),
        ),
        "augment": lambda out: generate_augment(
            quiet_config(), AugmentSource(), constitution, out, records=[demo]
        ),
    }
    for name, run in runs.items():
        with track_resources() as used:
            run(tmp_path / name)
        declared = declared_files(f"generate.{name}")
        assert used and set(used) <= set(declared), (name, sorted(set(used) - set(declared)))
