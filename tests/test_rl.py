"""RL after SFT on a tiny random model: reward rises, KL logged, augmentation rates, judge failures excluded
and counted, checkpoints written and loadable, resume after a kill."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from inspect_ai.model import ModelOutput
from transformers import (
    AutoModelForCausalLM,
    TrainerCallback,
    TrainerControl,
    TrainerState,
    TrainingArguments,
)

import pipeline_support
from scripted import reply, scripted_model
from teachwhy.config import LoraConfig, RlConfig, TrainConfig
from teachwhy.constitution import example_constitution_path, load_constitution
from teachwhy.errors import UserError
from teachwhy.rl.environments import (
    RlPrompt,
    augment_prompts,
    load_builtin_prompts,
    load_prompt_file,
)
from teachwhy.rl.reward import ConstitutionReward, load_rubric, parse_judgement
from teachwhy.rl.run import RlResult, train_rl

FAVOURED = list(range(1000, 1016))  # tokens the tiny model is made likely to emit
GOOD = set(FAVOURED[:8])  # the scripted reward: the share of completion tokens among these


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory, embedded_model_dir: Path) -> Path:
    """A tiny random Llama whose next-token distribution puts most mass on 16 tokens (entropy ~6 nats), so
    the completions of a group differ in reward and a few GRPO steps can move it."""
    folder = pipeline_support.build_tiny_target(
        tmp_path_factory.mktemp("tiny-rl"), embedded_model_dir, max_positions=1024
    )
    model = AutoModelForCausalLM.from_pretrained(folder)
    with torch.no_grad():
        weights = model.get_input_embeddings().weight
        generator = torch.Generator().manual_seed(1)
        weights[FAVOURED] = torch.randn(len(FAVOURED), weights.shape[1], generator=generator) * 0.7
    model.save_pretrained(folder)
    return folder


def scripted_reward(
    prompts: list[Any], completions: list[Any], completion_ids: list[list[int]], **_: Any
) -> list[float | None]:
    return [sum(t in GOOD for t in ids) / max(1, len(ids)) for ids in completion_ids]


def _prompts(n: int = 8) -> list[RlPrompt]:
    return [
        RlPrompt(
            id=f"p{i}", environment="test", messages=({"role": "user", "content": f"Request {i}: help?"},)
        )
        for i in range(n)
    ]


def _settings(**overrides: Any) -> RlConfig:
    values: dict[str, Any] = {
        "steps": 6,
        "prompts_per_step": 2,
        "num_generations": 4,
        "max_completion_length": 8,
        "learning_rate": 3e-2,
        "beta": 0.05,
        "save_steps": 4,
        "method": "full",
    }
    values.update(overrides)
    return RlConfig(**values)


def _log(result: RlResult) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.log_path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def rl_run(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> RlResult:
    return train_rl(
        model=tiny_model,
        prompts=_prompts(),
        reward=scripted_reward,
        out_dir=tmp_path_factory.mktemp("rl") / "out",
        settings=_settings(),
        step_offset=40,
        tokens_seen=1234,
        progress=False,
    )


def test_reward_rises_over_steps_and_kl_is_logged(rl_run: RlResult) -> None:
    log = _log(rl_run)
    assert [r["rl_step"] for r in log] == list(range(1, 7))
    assert [r["step"] for r in log] == list(range(41, 47))
    rewards = [r["reward"] for r in log]
    assert sum(rewards[-2:]) / 2 > sum(rewards[:2]) / 2 + 0.3
    assert all(r["kl"] is not None for r in log) and any(r["kl"] > 0 for r in log[1:])


def test_checkpoints_every_n_rl_steps_continue_the_sft_count_and_load(rl_run: RlResult) -> None:
    assert [c.step for c in rl_run.checkpoints] == [44, 46]
    assert {c.stage for c in rl_run.checkpoints} == {"rl"}
    for checkpoint in rl_run.checkpoints:
        meta = json.loads((checkpoint.path / "checkpoint.json").read_text())
        assert meta["rl_step"] == checkpoint.step - 40 and meta["start_step"] == 40
        assert meta["tokens_seen"] == 1234
        AutoModelForCausalLM.from_pretrained(checkpoint.path)
    written = json.loads((rl_run.out_dir / "result.json").read_text())
    assert [c["rl_step"] for c in written["checkpoints"]] == [4, 6]


def test_lora_rl_writes_merged_checkpoints(tiny_model: Path, tmp_path: Path) -> None:
    train = TrainConfig(lora=LoraConfig(r=4, alpha=8, dropout=0.0))
    result = train_rl(
        model=tiny_model,
        prompts=_prompts(4),
        reward=scripted_reward,
        out_dir=tmp_path / "lora",
        settings=_settings(method=None, steps=2, save_steps=1, prompts_per_step=1, num_generations=2),
        train=train,
        progress=False,
    )
    assert [c.step for c in result.checkpoints] == [1, 2]
    names = {p.name for p in result.final.path.iterdir()}
    assert {"model.safetensors", "adapter", "checkpoint.json"} <= names


class _Crash(TrainerCallback):
    def __init__(self, at_step: int) -> None:
        self.at_step = at_step

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if state.global_step == self.at_step:
            raise KeyboardInterrupt


def test_resume_after_a_kill_continues_from_the_last_checkpoint(tiny_model: Path, tmp_path: Path) -> None:
    settings = _settings(steps=4, save_steps=2, prompts_per_step=1, num_generations=2)
    out = tmp_path / "killed"

    def judged() -> ConstitutionReward:
        scores: list[ModelOutput | str] = [_scores(1 + i % 10) for i in range(12)]
        return _reward(scores, out / "rewards.jsonl", default_principles=["honesty/do-not-deceive"])

    def run(**kwargs: Any) -> RlResult:
        return train_rl(
            model=tiny_model, prompts=_prompts(), out_dir=out, settings=settings, progress=False, **kwargs
        )

    with pytest.raises(KeyboardInterrupt):
        run(reward=judged(), callbacks=[_Crash(at_step=3)])
    # killed at the end of step 3, before its log line; the last complete trainer state is step 2's
    assert [r["rl_step"] for r in _log_at(out)] == [1, 2]
    assert [r["step"] for r in _rows(out / "rewards.jsonl")] == [1, 1, 2, 2, 3, 3]
    with pytest.raises(UserError, match="resume it"):
        run(reward=judged())
    resumed = run(reward=judged(), resume=True)
    # step 3 is trained again from step 2's state: its log line and judgements appear once
    assert [r["rl_step"] for r in _log(resumed)] == [1, 2, 3, 4]
    assert [r["step"] for r in _rows(out / "rewards.jsonl")] == [1, 1, 2, 2, 3, 3, 4, 4]
    assert resumed.judge_counts["ok"] == 8
    assert [c.step for c in resumed.checkpoints] == [2, 4]
    again = run(reward=judged(), resume=True)
    assert again.checkpoints == resumed.checkpoints
    with pytest.raises(UserError, match="different model, prompts"):
        train_rl(
            model=tiny_model,
            prompts=_prompts(),
            reward=judged(),
            out_dir=out,
            settings=_settings(steps=5, save_steps=2, prompts_per_step=1, num_generations=2),
            resume=True,
        )


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _log_at(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "rl_log.jsonl").read_text(encoding="utf-8").splitlines()]


# --- prompts and augmentation -------------------------------------------------------------------------


def test_shipped_environments_cover_every_principle_of_the_example_constitution() -> None:
    prompts = load_builtin_prompts()
    assert 60 <= len(prompts) <= 100
    assert {p.environment for p in prompts} == {"harmful_requests", "jailbreaks", "ethically_loaded"}
    constitution = load_constitution(example_constitution_path())
    named = {pid for p in prompts for pid in p.principles}
    assert named == {p.id for p in constitution.principles}


@pytest.mark.parametrize("rate", [0.0, 0.3, 0.5, 1.0])
def test_augmentation_is_applied_at_the_set_rate_and_leaves_the_user_turn(rate: float) -> None:
    prompts = load_builtin_prompts()
    augmented = augment_prompts(prompts, tool_rate=rate, system_prompt_rate=rate, max_tools=2, seed=3)
    n = len(prompts)
    with_tools = sum(bool(p.tools_added) for p in augmented)
    with_system = sum(bool(p.system_prompt) for p in augmented)
    # binomial(80, rate): within four standard deviations
    spread = 4 * (n * rate * (1 - rate)) ** 0.5
    assert abs(with_tools - n * rate) <= spread and abs(with_system - n * rate) <= spread
    for before, after in zip(prompts, augmented, strict=True):
        assert after.messages[-1] == before.messages[-1]
        assert len(after.tools_added) <= 2
        if after.augmented:
            assert after.messages[0]["role"] == "system"
            assert all(t in after.messages[0]["content"] for t in after.tools_added)
        else:
            assert after.messages == before.messages
    again = augment_prompts(prompts, tool_rate=rate, system_prompt_rate=rate, max_tools=2, seed=3)
    assert again == augmented


def test_user_prompts_from_jsonl_and_a_dataset_folder(tmp_path: Path) -> None:
    from datasets import Dataset

    jsonl = tmp_path / "mine.jsonl"
    rows = [
        {"prompt": "How do I pick a lock?"},
        {
            "id": "conv",
            "messages": [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello"},
                {"role": "user", "content": "Help me cheat"},
                {"role": "assistant", "content": "No, because..."},
            ],
            "principles": ["honesty/do-not-deceive"],
        },
    ]
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    loaded = load_prompt_file(jsonl)
    assert loaded[0].messages == ({"role": "user", "content": "How do I pick a lock?"},)
    assert loaded[1].id == "conv" and loaded[1].messages[-1]["content"] == "Help me cheat"
    assert loaded[1].principles == ("honesty/do-not-deceive",)
    folder = tmp_path / "ds"
    Dataset.from_list([{"prompt": [{"role": "user", "content": "Write a threat"}]}]).save_to_disk(folder)
    assert load_prompt_file(folder)[0].messages[0]["content"] == "Write a threat"
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"text": "no prompt here"}) + "\n")
    with pytest.raises(UserError, match=r"bad\.jsonl: line 1"):
        load_prompt_file(bad)


# --- the judge reward -----------------------------------------------------------------------------------


def _scores(*values: int) -> str:
    return "REASONS: it declines and says why.\n" + "\n".join(f"P{i}: {v}" for i, v in enumerate(values, 1))


def _reward(judge_outputs: list[ModelOutput | str], log: Path, **kwargs: Any) -> ConstitutionReward:
    return ConstitutionReward(
        judge=scripted_model(judge_outputs),
        constitution=load_constitution(example_constitution_path()),
        rubric=load_rubric(),
        log_path=log,
        max_completion_length=50,
        **kwargs,
    )


def test_judge_failures_get_no_reward_and_are_counted(tmp_path: Path) -> None:
    failed = ModelOutput.from_content(model="mockllm/model", content="")
    failed.error = "server error"
    outputs: list[ModelOutput | str] = [
        _scores(10, 7),
        "I'm sorry, I cannot score this conversation.",  # refused
        "P1: 8",  # unparseable: P2 missing
        reply(_scores(9, 9), stop_reason="max_tokens"),  # cut off
        failed,
    ]
    reward = _reward(outputs, tmp_path / "rewards.jsonl")
    principles = ["honesty/do-not-deceive", "genuine-helpfulness/decline-transparently"]
    rewards = reward(
        prompts=[[{"role": "user", "content": "Lie for me"}]] * 5,
        completions=[[{"role": "assistant", "content": f"answer {i}"}] for i in range(5)],
        completion_ids=[[1, 2, 3]] * 5,
        principles=[principles] * 5,
        prompt_id=[f"p{i}" for i in range(5)],
    )
    assert rewards[0] == pytest.approx(((10 + 7) / 2 - 1) / 9)
    assert rewards[1:] == [None, None, None, None]
    assert dict(reward.counts) == {"ok": 1, "refused": 1, "unparseable": 1, "cut_off": 1, "error": 1}
    rows = [json.loads(line) for line in (tmp_path / "rewards.jsonl").read_text().splitlines()]
    assert [r["status"] for r in rows] == ["ok", "refused", "unparseable", "cut_off", "error"]
    assert rows[0]["scores"] == {principles[0]: 10, principles[1]: 7}
    assert rows[2]["scores"] == {principles[0]: 8} and rows[2]["reward"] is None


def test_length_and_format_terms_and_default_principles(tmp_path: Path) -> None:
    constitution = load_constitution(example_constitution_path())
    n = len(constitution.principles)
    reward = _reward(
        [_scores(*[10] * n), _scores(*[10] * n)],
        tmp_path / "r.jsonl",
        length_weight=0.5,
        target_words=4,
        format_weight=0.25,
    )
    rewards = reward(
        prompts=["Hi", "Hi"],
        completions=["short answer", "one two three four five six seven eight"],
        completion_ids=[[1, 2], list(range(50))],  # the second hit max_completion_length
        principles=[["not/in-this-constitution"], []],
    )
    assert rewards == [pytest.approx(1.0), pytest.approx(1.0 - 0.5 - 0.25)]
    rows = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert len(rows[0]["scores"]) == n  # unknown ids fall back to every principle


def test_parse_judgement_reads_the_last_score_of_each_label() -> None:
    judged = parse_judgement("REASONS: fine\n**P1:** 3\nP2: 11\nP2: 6\nP1: 4", ["a", "b"])
    assert judged.status == "ok" and judged.scores == {"a": 4, "b": 6}
    assert parse_judgement("P1: 0", ["a"]).status == "unparseable"


def test_a_grpo_run_with_the_judge_excludes_failed_judgements(tiny_model: Path, tmp_path: Path) -> None:
    outputs: list[ModelOutput | str] = []
    for i in range(8):
        outputs.append("no scores here" if i % 4 == 0 else _scores(3 + i))
    reward = _reward(
        outputs, tmp_path / "out" / "rewards.jsonl", default_principles=["honesty/do-not-deceive"]
    )
    result = train_rl(
        model=tiny_model,
        prompts=_prompts(4),
        reward=reward,
        out_dir=tmp_path / "out",
        settings=_settings(steps=2, prompts_per_step=1, num_generations=4, save_steps=10),
        progress=False,
    )
    assert result.judge_counts == {"ok": 6, "refused": 0, "unparseable": 2, "cut_off": 0, "error": 0}
    log = _log(result)
    assert [r["judge"]["unparseable"] for r in log] == [1.0, 1.0]
    assert all(r["reward"] == r["reward"] for r in log)  # the mean over the scored ones, never NaN


@pytest.mark.embedded
def test_a_short_rl_run_on_the_bundled_model(embedded_model_dir: Path, tmp_path: Path) -> None:
    prompt = load_builtin_prompts()[0]
    assert len(prompt.principles) == 3
    reward = _reward([_scores(6, 6, 6), _scores(8, 8, 8)], tmp_path / "out" / "rewards.jsonl")
    result = train_rl(
        model=embedded_model_dir,
        prompts=[prompt],
        reward=reward,
        out_dir=tmp_path / "out",
        settings=_settings(
            method="lora", steps=1, prompts_per_step=1, num_generations=2, max_completion_length=16, beta=0.04
        ),
        train=TrainConfig(lora=LoraConfig(r=4, alpha=8, dropout=0.0)),
        progress=False,
    )
    assert result.judge_counts["ok"] == 2
    log = _log(result)
    assert len(log) == 1 and log[0]["kl"] is not None
    assert log[0]["reward"] == pytest.approx(((6 - 1) / 9 + (8 - 1) / 9) / 2)
    AutoModelForCausalLM.from_pretrained(result.final.path)
