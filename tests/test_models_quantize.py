"""The embedded engine's opt-in weight-only int8 (`dtype: int8`)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import torch
from inspect_ai.model import GenerateConfig, get_model
from torch import nn
from transformers import AutoModelForCausalLM, AutoTokenizer

import pipeline_support
from teachwhy.errors import UserError
from teachwhy.models import loaded as loaded_module
from teachwhy.models.quantize import PACKED_ROWS, Int8WeightLinear, quantize_weights_int8


def test_an_int8_layer_stores_a_quarter_of_the_bytes_and_computes_close_to_float32() -> None:
    torch.manual_seed(0)
    linear = nn.Linear(96, 40, bias=True)
    layer = Int8WeightLinear(linear)
    assert layer.weight_int8.dtype == torch.int8 and layer.weight_int8.shape == (40, 96)
    assert layer.weight_int8.element_size() * 4 == linear.weight.element_size()
    # one scale per output row, which each row's largest weight nearly fills
    assert set(layer.weight_int8.abs().amax(dim=1).tolist()) <= {124, 125, 126, 127}
    # decoding (a few rows) runs the int8 kernel; a prompt (many rows) widens the weight: same product
    for rows in (3, PACKED_ROWS + 8):
        x = torch.randn(rows, 5, 96)
        out = layer(x.to(torch.bfloat16)).float()
        assert out.shape == (rows, 5, 40)
        exact = linear(x)
        assert (out - exact).norm() / exact.norm() < 0.02
        # and it is the product with the dequantized weight, not the float32 one
        dequantized = nn.functional.linear(x, layer.dequantized(), linear.bias)
        assert (out - dequantized).norm() / dequantized.norm() < 0.01
    # each weight is rounded to its row's int8 grid: off by at most half a step
    step = layer.scale.to(torch.float32)[:, None]
    assert ((layer.dequantized() - linear.weight.detach()).abs() <= step * 0.5001).all()


def test_quantizing_a_model_replaces_every_linear_and_keeps_the_rest_in_bfloat16(
    tmp_path: Path, embedded_model_dir: Path
) -> None:
    folder = pipeline_support.build_tiny_target(tmp_path / "tiny", embedded_model_dir, hidden=64)
    model = AutoModelForCausalLM.from_pretrained(folder)
    linears = sum(isinstance(m, nn.Linear) for m in model.modules())
    assert quantize_weights_int8(model) == linears > 0
    assert not any(isinstance(m, nn.Linear) for m in model.modules())
    floats = {p.dtype for p in model.parameters()} | {
        b.dtype for b in model.buffers() if b.is_floating_point()
    }
    assert floats == {torch.bfloat16}
    assert model.get_input_embeddings().weight.dtype == torch.bfloat16  # the tied embedding keeps its copy


def test_the_engine_serves_the_int8_model_it_was_asked_for(tmp_path: Path, embedded_model_dir: Path) -> None:
    folder = pipeline_support.build_tiny_target(
        tmp_path / "tiny", embedded_model_dir, hidden=64, max_positions=256, initializer_range=0.5
    )
    tokenizer = AutoTokenizer.from_pretrained(folder)
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is two plus two?"}], add_generation_prompt=True, tokenize=False
    )
    ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
    reference = AutoModelForCausalLM.from_pretrained(folder)
    quantize_weights_int8(reference)
    expected = reference.generate(ids, max_new_tokens=10, do_sample=False)

    model = get_model(f"embedded/{folder}", memoize=False, dtype="int8")
    try:
        output = asyncio.run(
            model.generate("What is two plus two?", config=GenerateConfig(temperature=0, max_tokens=10))
        )
        served = model.api._live().batcher.model  # type: ignore[attr-defined]
    finally:
        model.api.close()
    assert any(isinstance(m, Int8WeightLinear) for m in served.modules())
    assert output.completion == tokenizer.decode(expected[0, ids.shape[1] :], skip_special_tokens=True)


def test_an_unknown_dtype_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="dtype must be one of float32, bfloat16, float16, int8, got 'int4'"):
        loaded_module.acquire(tmp_path, device="cpu", dtype="int4", max_batch=1)


def test_mean_kl_is_zero_for_the_same_model_and_grows_with_the_difference() -> None:
    from teachwhy.models.bench_dtype import mean_kl

    torch.manual_seed(0)
    logits = torch.randn(1, 7, 11)
    p = [torch.log_softmax(logits, -1)]
    assert mean_kl(p, p) == 0.0
    near = [torch.log_softmax(logits + 0.01 * torch.randn(1, 7, 11), -1)]
    far = [torch.log_softmax(logits + 1.0 * torch.randn(1, 7, 11), -1)]
    assert 0 < mean_kl(p, near) < mean_kl(p, far)
