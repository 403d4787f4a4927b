"""The `embedded` Inspect provider: continuous batching that honours each request's settings.

Most tests run a tiny randomly initialised Llama saved with the embedded model's tokenizer, which decodes
in milliseconds; a few run the real SmolLM2 model through Inspect.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from inspect_ai.model import (
    ChatMessageAssistant,
    ChatMessageSystem,
    ChatMessageTool,
    ChatMessageUser,
    GenerateConfig,
    Model,
    ModelOutput,
    get_model,
    get_model_info,
)
from inspect_ai.tool import ToolCall, ToolFunction, ToolInfo, ToolParam, ToolParams
from transformers import AutoModelForCausalLM, AutoTokenizer

import pipeline_support
from teachwhy.config import RoleModel
from teachwhy.errors import UserError
from teachwhy.models import loaded as loaded_module
from teachwhy.models.batching import GenerationRequest
from teachwhy.models.provider import chat_dicts
from teachwhy.models.roles import inspect_model_args, resolve_model
from teachwhy.models.sampling import SamplingSettings
from teachwhy.models.text_tools import tool_definitions_text

PROMPTS = [
    "Name a colour.",
    "What is two plus two?",
    "Write one line about the sea, please, and make it a calm and quiet line.",
    "Hi",
    "List three fruits that grow on trees in warm countries.",
    "Why do we sleep?",
]


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, embedded_model_dir: Path) -> Path:
    """A 2-layer Llama with random weights and the embedded tokenizer, saved as a model folder."""
    return pipeline_support.build_tiny_target(
        tmp_path_factory.mktemp("tiny-llama"),
        embedded_model_dir,
        hidden=64,
        max_positions=256,
        initializer_range=0.5,
    )


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path) -> Iterator[Model]:
    model = get_model(f"embedded/{tiny_model_dir}", memoize=False, max_batch=8)
    yield model
    model.api.close()


def _batcher(model: Model) -> Any:
    return model.api._live().batcher  # type: ignore[attr-defined]


def _generate(model: Model, prompt: str | list[Any], **config: Any) -> ModelOutput:
    return asyncio.run(model.generate(prompt, config=GenerateConfig(**config)))


def _generate_all(model: Model, prompts: list[str], **config: Any) -> list[ModelOutput]:
    async def run() -> list[ModelOutput]:
        return list(
            await asyncio.gather(*(model.generate(p, config=GenerateConfig(**config)) for p in prompts))
        )

    return asyncio.run(run())


def test_greedy_decoding_matches_transformers_and_repeats(tiny: Model, tiny_model_dir: Path) -> None:
    first = _generate(tiny, PROMPTS[1], temperature=0, max_tokens=12)
    second = _generate(tiny, PROMPTS[1], temperature=0, max_tokens=12)
    assert first.completion == second.completion

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    reference = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": PROMPTS[1]}], add_generation_prompt=True, tokenize=False
    )
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    out = reference.generate(ids, max_new_tokens=12, do_sample=False)
    assert first.completion == tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
    assert first.usage is not None and first.usage.input_tokens == ids.shape[1]


def test_seeded_sampling_is_reproducible_per_request(tiny: Model) -> None:
    a = _generate(tiny, PROMPTS[0], temperature=1.0, seed=11, max_tokens=16)
    b = _generate(tiny, PROMPTS[0], temperature=1.0, seed=11, max_tokens=16)
    c = _generate(tiny, PROMPTS[0], temperature=1.0, seed=12, max_tokens=16)
    assert a.completion == b.completion
    assert a.completion != c.completion


def test_concurrent_requests_are_batched_without_changing_answers(tiny: Model) -> None:
    solo = [_generate(tiny, p, temperature=0, max_tokens=20).completion for p in PROMPTS]
    assert len(set(solo)) == len(PROMPTS)  # each prompt has its own answer
    batcher = _batcher(tiny)
    batcher.peak_batch = 0
    together = _generate_all(tiny, PROMPTS, temperature=0, max_tokens=20)
    assert [o.completion for o in together] == solo
    assert batcher.peak_batch == len(PROMPTS)


@pytest.fixture(scope="module")
def smollm(embedded_model_dir: Path) -> Iterator[Model]:
    model = get_model("embedded/SmolLM2-135M-Instruct", memoize=False)
    yield model
    model.api.close()


@pytest.mark.embedded
def test_requests_join_a_running_batch_between_steps(smollm: Model, monkeypatch: pytest.MonkeyPatch) -> None:
    # the real model, whose answers change if padding or positions are wrong when rows join
    batcher = _batcher(smollm)
    settings = SamplingSettings(max_tokens=24, temperature=0)
    prompts = [smollm.api._encode([ChatMessageUser(content=p)], []) for p in PROMPTS[:3]]  # type: ignore[attr-defined]
    outcomes: dict[int, Any] = {}
    done = [threading.Event() for _ in prompts]

    def submit(i: int) -> None:
        def deliver(outcome: Any) -> None:
            outcomes[i] = outcome
            done[i].set()

        batcher.submit(GenerationRequest(prompt_ids=prompts[i], settings=settings, deliver=deliver))

    solo = []
    for i in range(len(prompts)):
        submit(i)
        assert done[i].wait(60)
        solo.append(outcomes[i].text)
        done[i].clear()

    # the second and third requests arrive while the first is decoding (after its 4th and 8th step)
    first_step = batcher.steps + 1
    decode_step = batcher._step

    def step_then_deliver_arrivals() -> None:
        decode_step()
        if batcher.steps in (first_step + 4, first_step + 8):
            submit((batcher.steps - first_step) // 4)

    monkeypatch.setattr(batcher, "_step", step_then_deliver_arrivals)
    batcher.peak_batch = 0
    submit(0)
    assert all(event.wait(60) for event in done)
    assert [outcomes[i].text for i in range(3)] == solo
    assert batcher.peak_batch == 3
    assert batcher.steps - first_step < 3 * 23  # decoded together, not one after another


def test_usage_counts_own_tokens_and_max_tokens_is_reported(tiny: Model) -> None:
    short, long = _generate_all(tiny, [PROMPTS[3], PROMPTS[2]], temperature=0, max_tokens=7)
    for output in (short, long):
        assert output.stop_reason == "max_tokens"
        assert output.usage is not None and output.usage.output_tokens == 7
    assert short.usage is not None and long.usage is not None
    assert short.usage.input_tokens < long.usage.input_tokens  # no padding counted


def test_stop_sequences_cut_the_completion(tiny: Model) -> None:
    full = _generate(tiny, PROMPTS[4], temperature=0, max_tokens=30).completion
    stop = full[10:14]
    assert stop.strip() and stop in full
    cut = _generate(tiny, PROMPTS[4], temperature=0, max_tokens=30, stop_seqs=[stop])
    assert cut.stop_reason == "stop"
    assert cut.completion == full[: full.index(stop)]


def test_a_failure_in_the_worker_reaches_the_caller_and_the_worker_survives(
    tiny: Model, monkeypatch: pytest.MonkeyPatch
) -> None:
    batcher = _batcher(tiny)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("simulated device failure")

    with monkeypatch.context() as patch:
        patch.setattr(batcher.model, "forward", broken)
        with pytest.raises(RuntimeError, match="simulated device failure"):
            _generate(tiny, PROMPTS[0], temperature=0, max_tokens=4, max_retries=0)
    assert _generate(tiny, PROMPTS[0], temperature=0, max_tokens=4).stop_reason == "max_tokens"


def _slow_down(batcher: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make each decoding step take at least 10 ms, so a long request is surely still running."""
    decode_step = batcher._step

    def slow_step() -> None:
        time.sleep(0.01)
        decode_step()

    monkeypatch.setattr(batcher, "_step", slow_step)


def test_closing_fails_running_requests_instead_of_hanging(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = get_model(f"embedded/{tiny_model_dir}", memoize=False, max_batch=2)
    batcher = _batcher(model)
    _slow_down(batcher, monkeypatch)
    outcome: list[BaseException] = []

    def wait() -> None:
        try:
            _generate(model, PROMPTS[0], temperature=0, max_tokens=200, max_retries=0)
        except RuntimeError as e:
            outcome.append(e)

    caller = threading.Thread(target=wait)
    caller.start()
    deadline = time.monotonic() + 30
    while batcher.steps == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    model.api.close()
    caller.join(30)
    assert not caller.is_alive() and not batcher.alive
    assert outcome and "closed" in str(outcome[0])


def test_cancelled_requests_leave_the_batch(tiny: Model, monkeypatch: pytest.MonkeyPatch) -> None:
    batcher = _batcher(tiny)
    _slow_down(batcher, monkeypatch)

    async def give_up() -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(
                tiny.generate(PROMPTS[0], config=GenerateConfig(temperature=0, max_tokens=250)), 0.2
            )

    asyncio.run(give_up())
    deadline = time.monotonic() + 10
    while batcher._rows and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not batcher._rows


def test_models_sharing_a_folder_share_one_batcher(tiny_model_dir: Path) -> None:
    a = get_model(f"embedded/{tiny_model_dir}", memoize=False, max_batch=8)
    b = get_model(
        f"embedded/{tiny_model_dir}", config=GenerateConfig(temperature=0), memoize=False, max_batch=8
    )
    assert _batcher(a) is _batcher(b)
    a.api.close()
    assert _batcher(b).alive  # b still holds it
    b.api.close()


def test_a_folder_that_is_not_a_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"not a model folder \(it has no config.json\)"):
        get_model(f"embedded/{tmp_path}", memoize=False)
    with pytest.raises(UserError, match="no such model folder"):
        get_model(f"embedded/{tmp_path / 'missing'}", memoize=False)
    with pytest.raises(UserError, match="unknown model args model_path"):
        resolve_model(RoleModel(model=f"embedded/{tmp_path}", args={"model_path": "x"}), name="judge")


def test_tools_are_written_into_the_system_prompt_as_text() -> None:
    tool = ToolInfo(
        name="send_email",
        description="Send an email.",
        parameters=ToolParams(properties={"to": ToolParam(type="string", description="Recipient.")}),
    )
    messages = [
        ChatMessageSystem(content="You are an office assistant."),
        ChatMessageUser(content="Tell Kim the meeting moved."),
        ChatMessageAssistant(
            content="On it.", tool_calls=[ToolCall(id="1", function="send_email", arguments={"to": "kim"})]
        ),
        ChatMessageTool(content="sent", tool_call_id="1", function="send_email"),
        ChatMessageUser(content="Thanks."),
    ]
    turns = chat_dicts(messages, [tool])
    assert [t["role"] for t in turns] == ["system", "user", "assistant", "user"]
    assert turns[0]["content"].startswith("You are an office assistant.")
    assert tool_definitions_text([tool]) in turns[0]["content"]
    assert '"name": "send_email"' in turns[0]["content"] and "<tool_call>" in turns[0]["content"]
    assert (
        turns[2]["content"]
        == 'On it.\n<tool_call>\n{"name": "send_email", "arguments": {"to": "kim"}}\n</tool_call>'
    )
    assert turns[3]["content"] == "<tool_response>\nsent\n</tool_response>\n\nThanks."
    assert chat_dicts(messages[1:2], [tool])[0]["role"] == "system"  # created when missing


def test_tool_definitions_reach_the_model(tiny: Model) -> None:
    tool = ToolInfo(name="lookup_weather", description="Weather for a city.")
    plain = _generate(tiny, PROMPTS[3], temperature=0, max_tokens=2)
    with_tools = asyncio.run(
        tiny.generate(
            PROMPTS[3],
            tools=[tool],
            tool_choice=ToolFunction("lookup_weather"),
            config=GenerateConfig(temperature=0, max_tokens=2),
        )
    )
    assert plain.usage is not None and with_tools.usage is not None
    assert with_tools.usage.input_tokens > plain.usage.input_tokens + 20


def test_the_embedded_role_maps_to_the_embedded_provider() -> None:
    assert inspect_model_args(RoleModel()) == ("embedded/SmolLM2-135M-Instruct", {})
    assert inspect_model_args(RoleModel(model="hf/local"), temperature=0) == (
        "hf/local",
        {"do_sample": False},
    )


def test_loaded_models_are_released_when_the_last_user_closes(tiny_model_dir: Path) -> None:
    model = get_model(f"embedded/{tiny_model_dir}", memoize=False, max_batch=3)
    batcher = _batcher(model)
    assert any(m.batcher is batcher for m in loaded_module._LOADED.values())
    model.api.close()
    assert not batcher.alive
    assert not any(m.batcher is batcher for m in loaded_module._LOADED.values())


def test_inspects_model_info_lookup_does_not_keep_a_checkpoint_loaded(tiny_model_dir: Path) -> None:
    """During an eval Inspect looks up the model's info by name, which builds (and memoizes forever) a
    provider instance with a placeholder key. It must not take a reference to the loaded weights, or every
    evaluated checkpoint stays in memory until the process ends (a long run grew to 24 GB)."""
    # other tests of this module may hold the same folder loaded (the module-scoped `tiny`): count only ours
    before = {id(m) for m in loaded_module._LOADED.values()}
    model = get_model(f"embedded/{tiny_model_dir}", memoize=False, max_batch=2)
    batcher = _batcher(model)
    get_model_info(f"embedded/{tiny_model_dir}")  # what Inspect does while it evaluates the model
    ours = [m for m in loaded_module._LOADED.values() if id(m) not in before]
    assert [(m.batcher is batcher, m.users) for m in ours] == [(True, 1)]  # no second copy, no extra user
    model.api.close()
    assert not batcher.alive
    assert not any(id(m) not in before for m in loaded_module._LOADED.values())


def test_inspect_cli_finds_the_provider_through_the_entry_point(tiny_model_dir: Path, tmp_path: Path) -> None:
    task = tmp_path / "one.py"
    task.write_text(
        "from inspect_ai import Task, task\n"
        "from inspect_ai.dataset import Sample\n"
        "@task\n"
        "def one():\n"
        "    return Task(dataset=[Sample(input='Say hi.', target='hi')])\n",
        encoding="utf-8",
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "inspect_ai",
            "eval",
            task.name,
            "--model",
            f"embedded/{tiny_model_dir}",
            "--max-tokens",
            "4",
            "--temperature",
            "0",
            "--log-dir",
            str(tmp_path / "logs"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert list((tmp_path / "logs").glob("*.eval"))


@pytest.mark.embedded
def test_the_real_embedded_model_answers_through_inspect(smollm: Model) -> None:
    outputs = _generate_all(
        smollm, ["What is the capital of France?", "Count from 1 to 5."], temperature=0, max_tokens=16
    )
    assert "Paris" in outputs[0].completion and "3. 3" in outputs[1].completion
    counted = _generate(smollm, "Count from 1 to 5.", temperature=0, max_tokens=40, stop_seqs=["4."])
    assert counted.stop_reason == "stop" and counted.completion == "1. 1\n2. 2\n3. 3\n"
