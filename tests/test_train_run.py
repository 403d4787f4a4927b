"""Training runs on a tiny random model: loss, checkpoint cadence, merge equivalence, stages, resume, CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    TrainerCallback,
    TrainerControl,
    TrainerState,
    TrainingArguments,
)
from typer.testing import CliRunner

from teachwhy.cli import app
from teachwhy.config import LoraConfig, RoleModel, TrainConfig, TrainStage
from teachwhy.errors import UserError
from teachwhy.train import TrainResult, resolve_target_path, train_model


@pytest.fixture(scope="module")
def tiny_model(embedded_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised two-layer Llama with the embedded model's tokenizer (and chat template)."""
    folder = tmp_path_factory.mktemp("tiny-model")
    tokenizer = AutoTokenizer.from_pretrained(embedded_model_dir)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def data_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "train.jsonl"
    lines = [
        {
            "id": f"doc{i}",
            "kind": "documents",
            "text": "Honesty matters because people act on what they are told. " * (1 + i % 3),
        }
        for i in range(8)
    ] + [
        {
            "id": f"adv{i}",
            "kind": "advice",
            "messages": [
                {"role": "user", "content": f"May I hide mistake number {i} from my team?"},
                {"role": "assistant", "content": "Tell them: hiding it leaves others to build on an error."},
            ],
        }
        for i in range(6)
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


def _config(**overrides: Any) -> TrainConfig:
    settings: dict[str, Any] = {
        "stages": [
            TrainStage(name="midtrain", kind="documents", max_steps=10),
            TrainStage(name="sft", kind="chat", max_steps=3, learning_rate=1e-12),
        ],
        "lora": LoraConfig(r=8, alpha=16, dropout=0.0),
        "learning_rate": 3e-2,
        "warmup_ratio": 0.0,
        "lr_scheduler": "constant",
        "batch_size": 2,
        "max_length": 96,
        "save_steps": 4,
    }
    settings.update(overrides)
    return TrainConfig(**settings)


@pytest.fixture(scope="module")
def two_stage_run(tiny_model: Path, data_file: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    out = tmp_path_factory.mktemp("run") / "out"
    return train_model(model=tiny_model, data=[data_file], out_dir=out, config=_config(), progress=False)


def _log(result: TrainResult) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.log_path.read_text(encoding="utf-8").splitlines()]


def test_lora_loss_decreases_on_documents(two_stage_run: TrainResult) -> None:
    losses = [r["loss"] for r in _log(two_stage_run) if r["stage"] == "midtrain"]
    assert len(losses) == 10
    # a rank-8 adapter on a random 32-wide model learns slowly, but steadily
    assert max(losses[-3:]) < min(losses[:3])


def test_checkpoints_every_n_global_steps_and_at_each_stage_end(two_stage_run: TrainResult) -> None:
    assert [(c.step, c.stage) for c in two_stage_run.checkpoints] == [
        (4, "midtrain"),
        (8, "midtrain"),
        (10, "midtrain"),
        (12, "sft"),
        (13, "sft"),
    ]
    assert two_stage_run.steps == 13
    for checkpoint in two_stage_run.checkpoints:
        names = {p.name for p in checkpoint.path.iterdir()}
        assert {"config.json", "model.safetensors", "tokenizer.json", "checkpoint.json", "adapter"} <= names
        assert "adapter_config.json" not in names  # a plain model folder, not an adapter folder
    # only the newest trainer states are kept for resuming; merged checkpoints are all kept
    assert sorted(p.name for p in (two_stage_run.out_dir / "trainer" / "midtrain").glob("checkpoint-*")) == [
        "checkpoint-10",
        "checkpoint-8",
    ]


def test_log_counts_tokens_per_source_across_stages(two_stage_run: TrainResult) -> None:
    log = _log(two_stage_run)
    assert [r["step"] for r in log] == list(range(1, 14))
    mid, sft = log[9], log[-1]
    assert mid["tokens_by_source"]["advice"] == 0 and mid["tokens_by_source"]["documents"] > 0
    assert sft["tokens_by_source"]["documents"] == mid["tokens_by_source"]["documents"]
    assert sft["tokens_by_source"]["advice"] > 0
    assert two_stage_run.tokens_by_source == sft["tokens_by_source"]
    assert all(r["tokens_per_s"] > 0 and r["learning_rate"] is not None for r in log)
    assert two_stage_run.final.tokens_seen == sft["tokens"]


def test_merged_checkpoint_matches_base_plus_adapter(two_stage_run: TrainResult, tiny_model: Path) -> None:
    checkpoint = two_stage_run.checkpoints[2].path  # end of midtraining
    ids = torch.tensor([[5, 900, 31, 2048, 77, 12]])
    with torch.no_grad():
        base = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
        base_logits = base(ids).logits
        adapted = PeftModel.from_pretrained(base, checkpoint / "adapter").eval()
        adapter_logits = adapted(ids).logits
        merged_logits = AutoModelForCausalLM.from_pretrained(checkpoint).eval()(ids).logits
    torch.testing.assert_close(merged_logits, adapter_logits, atol=1e-4, rtol=1e-4)
    assert (merged_logits - base_logits).abs().max() > 1e-2  # training changed the model


def test_chat_stage_continues_the_midtraining_adapter(two_stage_run: TrainResult) -> None:
    # the sft stage trains at a negligible rate, so its adapter must still be the one midtraining ended with
    end_mid = load_file(two_stage_run.checkpoints[2].path / "adapter" / "adapter_model.safetensors")
    end_sft = load_file(two_stage_run.final.path / "adapter" / "adapter_model.safetensors")
    assert end_mid.keys() == end_sft.keys()
    lora_b = [k for k in end_mid if "lora_B" in k]
    assert lora_b and any(end_mid[k].abs().max() > 0 for k in lora_b)  # a fresh adapter would have B == 0
    for key in end_mid:
        torch.testing.assert_close(end_sft[key], end_mid[key], atol=1e-6, rtol=1e-6)


class _Crash(TrainerCallback):
    """Simulates a kill: stops the process's training abruptly after a given step."""

    def __init__(self, at_step: int) -> None:
        self.at_step = at_step

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if state.global_step == self.at_step:
            raise KeyboardInterrupt


def test_resume_after_a_kill_matches_an_uninterrupted_run(tiny_model: Path, tmp_path: Path) -> None:
    data_file = tmp_path / "docs.jsonl"
    data_file.write_text(
        "".join(
            json.dumps(
                {
                    "id": f"d{i}",
                    "kind": "documents",
                    "text": f"Note {i}: say what you did and why. " * (1 + i % 4),
                }
            )
            + "\n"
            for i in range(80)
        ),
        encoding="utf-8",
    )
    config = _config(
        stages=[TrainStage(name="midtrain", kind="documents", max_steps=8)],
        save_steps=3,
        lora=LoraConfig(r=8, alpha=16, dropout=0.1),
    )
    whole = train_model(
        model=tiny_model, data=[data_file], out_dir=tmp_path / "whole", config=config, progress=False
    )
    killed = tmp_path / "killed"
    with pytest.raises(KeyboardInterrupt):
        train_model(
            model=tiny_model,
            data=[data_file],
            out_dir=killed,
            config=config,
            progress=False,
            callbacks=[_Crash(at_step=5)],
        )
    # a kill during a save leaves a trainer checkpoint without its completion marker
    (killed / "trainer" / "midtrain" / "checkpoint-6").mkdir()
    (killed / "trainer" / "midtrain" / "checkpoint-6" / "adapter_model.safetensors").write_bytes(b"torn")
    with pytest.raises(UserError, match="resume it"):
        train_model(model=tiny_model, data=[data_file], out_dir=killed, config=config, progress=False)

    resumed = train_model(
        model=tiny_model, data=[data_file], out_dir=killed, config=config, progress=False, resume=True
    )

    assert [c.step for c in resumed.checkpoints] == [c.step for c in whole.checkpoints] == [3, 6, 8]
    resumed_log, whole_log = _log(resumed), _log(whole)
    assert [r["step"] for r in resumed_log] == list(range(1, 9))
    assert [r["loss"] for r in resumed_log] == pytest.approx([r["loss"] for r in whole_log], rel=1e-4)
    assert resumed.tokens_by_source == whole.tokens_by_source
    final_resumed = load_file(resumed.final.path / "model.safetensors")
    final_whole = load_file(whole.final.path / "model.safetensors")
    for key, value in final_whole.items():
        torch.testing.assert_close(final_resumed[key], value, atol=1e-5, rtol=1e-4)
    # a finished run is returned as it is; other settings cannot resume it
    again = train_model(
        model=tiny_model, data=[data_file], out_dir=killed, config=config, progress=False, resume=True
    )
    assert again.checkpoints == resumed.checkpoints
    with pytest.raises(UserError, match="different model, data or settings"):
        train_model(
            model=tiny_model, data=[data_file], out_dir=killed, config=_config(), progress=False, resume=True
        )


def test_full_fine_tuning_lowers_the_loss_and_writes_loadable_checkpoints(
    tiny_model: Path, data_file: Path, tmp_path: Path
) -> None:
    config = _config(
        method="full",
        learning_rate=1e-2,
        save_steps=100,
        stages=[TrainStage(name="mixed", kind="mixed", max_steps=12)],
    )
    result = train_model(
        model=tiny_model, data=[data_file], out_dir=tmp_path / "full", config=config, progress=False
    )
    losses = [r["loss"] for r in _log(result)]
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 1.0
    assert [c.step for c in result.checkpoints] == [12]
    assert not (result.final.path / "adapter").exists()
    assert set(result.tokens_by_source) == {"documents", "advice"}
    model = AutoModelForCausalLM.from_pretrained(result.final.path)
    base = AutoModelForCausalLM.from_pretrained(tiny_model)
    assert not torch.equal(model.model.layers[0].mlp.up_proj.weight, base.model.layers[0].mlp.up_proj.weight)


def test_stages_without_data_of_their_kind(tiny_model: Path, tmp_path: Path) -> None:
    docs_only = tmp_path / "docs.jsonl"
    docs_only.write_text(
        json.dumps({"id": "d", "kind": "documents", "text": "A short essay on candour."}) + "\n"
    )
    config = _config(stages=[TrainStage(name="sft", kind="chat", max_steps=1)])
    with pytest.raises(UserError, match=r"none of the training stages \(chat\)"):
        train_model(model=tiny_model, data=[docs_only], out_dir=tmp_path / "o", config=config, progress=False)


def test_conversations_all_longer_than_max_length_name_the_setting(tiny_model: Path, tmp_path: Path) -> None:
    long_chat = tmp_path / "chat.jsonl"
    turns = [{"role": "user", "content": "word " * 200}, {"role": "assistant", "content": "reply " * 200}]
    long_chat.write_text(json.dumps({"id": "c", "kind": "advice", "messages": turns}) + "\n")
    config = _config(max_length=64, stages=[TrainStage(name="sft", kind="chat", max_steps=1)])
    with pytest.raises(
        UserError, match=r"train\.max_length: all 1 conversations are longer than max_length=64"
    ):
        train_model(model=tiny_model, data=[long_chat], out_dir=tmp_path / "o", config=config, progress=False)


def test_target_must_have_open_weights(tiny_model: Path) -> None:
    assert resolve_target_path(RoleModel(model=f"embedded/{tiny_model}")) == str(tiny_model.resolve())
    assert resolve_target_path(RoleModel(model=f"hf/{tiny_model}")) == str(tiny_model.resolve())
    assert resolve_target_path(RoleModel(model="hf/local", args={"model_path": str(tiny_model)})) == str(
        tiny_model
    )
    with pytest.raises(UserError, match=r"models\.target: 'openai-api/vllm/qwen' cannot be fine-tuned"):
        resolve_target_path(RoleModel(model="openai-api/vllm/qwen"))


def test_cli_trains_an_arm_and_reports_user_errors(tiny_model: Path, data_file: Path, tmp_path: Path) -> None:
    config = tmp_path / "teachwhy.yaml"
    config.write_text(
        "models: {target: embedded}\n"
        "train: {stages: [{name: sft, kind: chat, max_steps: 50}]}\n"
        "arms:\n"
        "  - name: quick\n"
        "    train: {batch_size: 2, max_length: 96, save_steps: 1,\n"
        "            stages: [{name: sft, kind: chat, max_steps: 2}]}\n",
        encoding="utf-8",
    )
    runner = CliRunner()
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        [
            "train",
            "-c",
            str(config),
            "--arm",
            "quick",
            "--data",
            str(data_file),
            "--out",
            str(out),
            "--target",
            f"hf/{tiny_model}",
        ],
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-000001", "step-000002"]
    assert "advice" in result.output

    failed = runner.invoke(
        app,
        [
            "train",
            "-c",
            str(config),
            "--data",
            str(data_file),
            "--out",
            str(tmp_path / "x"),
            "--target",
            "anthropic/claude-sonnet-4-5",
        ],
    )
    assert isinstance(failed.exception, UserError) and "models.target" in str(failed.exception)
    missing = runner.invoke(app, ["train", "-c", str(config), "--arm", "nope", "--data", str(data_file)])
    assert isinstance(missing.exception, UserError) and "no arm named 'nope'" in str(missing.exception)
