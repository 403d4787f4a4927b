"""The experiment file: the shipped template loads, and every kind of bad input names the file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from teachwhy.config import apply_role_overrides, load_config
from teachwhy.errors import UserError
from teachwhy.workspace import config_template


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "teachwhy.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_template_is_valid_and_uses_the_embedded_model(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, config_template()))
    assert {config.models.role(r).model for r in ("generator", "target", "judge", "auditor")} == {"embedded"}
    assert config.arms[0].name == "baseline" and not config.arms[0].data.sources()
    assert len(config.arms) >= 2


def test_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "constitution: values/c.md\nworkspace: out\n"))
    assert config.constitution_path == tmp_path / "values" / "c.md"
    assert config.workspace_path == tmp_path / "out"


def test_role_accepts_a_string_or_a_mapping(tmp_path: Path) -> None:
    text = (
        "models:\n  target: hf/Qwen/Qwen2.5-0.5B-Instruct\n"
        "  judge: {model: openai-api/vllm/qwen, base_url: 'http://localhost:8000/v1', args: {x: 1}}\n"
    )
    config = load_config(write(tmp_path, text))
    assert config.models.target.model == "hf/Qwen/Qwen2.5-0.5B-Instruct"
    assert config.models.judge.base_url == "http://localhost:8000/v1"
    assert config.models.judge.args == {"x": 1}
    assert config.models.generator.model == "embedded"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "arms:\n  - name: baseline\n  - name: advice\n    data:\n      advice: {count: 0}\n",
            "teachwhy.yaml: arms[1].data.advice.count: must be > 0",
        ),
        ("modles: {}\n", "teachwhy.yaml: modles: unknown key"),
        ("train:\n  batch_size: many\n", "teachwhy.yaml: train.batch_size: Input should be a valid integer"),
        (
            "models:\n  judge: gpt4\n",
            "teachwhy.yaml: models.judge.model: must be 'embedded' or an Inspect model",
        ),
        ("arms:\n  - name: a\n  - name: a\n", "teachwhy.yaml: arms: arm name 'a' is used twice"),
        ("arms: []\n", "teachwhy.yaml: arms: at least one arm is required"),
        ("- just\n- a list\n", "teachwhy.yaml: (top level): must be a mapping"),
        ("models: [unclosed\n", "teachwhy.yaml: line 2: not valid YAML"),
        (
            "arms:\n  - name: x\n    data:\n      advice: {count: 2}\n      weights: {documents: 1}\n",
            "teachwhy.yaml: arms[0].data: weights name sources this arm does not generate: documents",
        ),
    ],
)
def test_bad_config_names_file_and_key(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(UserError) as caught:
        load_config(write(tmp_path, text))
    message = str(caught.value)
    assert message.startswith(str(tmp_path / expected.split(": ", 1)[0]))
    assert expected.split(": ", 1)[1] in message
    assert "\n" not in message


def test_missing_config_file_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_command_line_overrides_replace_only_the_named_roles(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "models: {judge: mockllm/model}\n"))
    updated = apply_role_overrides(config, {"target": "hf/some/model", "judge": None})
    assert updated.models.target.model == "hf/some/model"
    assert updated.models.judge.model == "mockllm/model"
    assert config.models.target.model == "embedded"  # the original is untouched
    with pytest.raises(UserError, match="--generator"):
        apply_role_overrides(config, {"generator": "nonsense"})


def test_sources_inherit_generation_defaults_unless_they_set_their_own(tmp_path: Path) -> None:
    text = (
        "generation: {judge_filter: false, truncated: trim}\n"
        "arms:\n  - name: a\n    data:\n      advice: {count: 2}\n      stories: {judge_filter: true}\n"
    )
    data = load_config(write(tmp_path, text)).arms[0].data
    assert data.advice is not None and data.stories is not None
    assert (data.advice.judge_filter, data.advice.truncated) == (False, "trim")
    assert (data.stories.judge_filter, data.stories.truncated) == (True, "trim")
    plain = load_config(write(tmp_path, "arms:\n  - name: a\n    data:\n      advice: {count: 2}\n"))
    assert plain.arms[0].data.advice is not None
    assert (plain.arms[0].data.advice.judge_filter, plain.arms[0].data.advice.truncated) == (True, "drop")
