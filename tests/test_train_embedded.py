"""One short LoRA run on the real embedded model; its merged checkpoint then answers through Inspect."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from inspect_ai.model import GenerateConfig, get_model

from teachwhy.config import LoraConfig, TrainConfig, TrainStage
from teachwhy.train import train_model


@pytest.mark.embedded
def test_lora_on_embedded_model_then_answer_through_inspect(embedded_model_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "advice.jsonl"
    data.write_text(
        "".join(
            json.dumps(
                {
                    "id": f"a{i}",
                    "kind": "advice",
                    "messages": [
                        {
                            "role": "user",
                            "content": "A colleague asked me to sign off tests I did not run. What now?",
                        },
                        {
                            "role": "assistant",
                            "content": "Say you cannot sign for tests you did not run; offer to run them.",
                        },
                    ],
                }
            )
            + "\n"
            for i in range(4)
        ),
        encoding="utf-8",
    )
    config = TrainConfig(
        stages=[TrainStage(name="sft", kind="chat", max_steps=2)],
        lora=LoraConfig(r=4, alpha=8),
        batch_size=2,
        max_length=128,
        save_steps=100,
    )
    result = train_model(
        model=embedded_model_dir, data=[data], out_dir=tmp_path / "run", config=config, progress=False
    )
    assert [c.step for c in result.checkpoints] == [2]

    model = get_model("hf/local", model_path=str(result.final.path), device="cpu", do_sample=False)
    output = asyncio.run(model.generate("Name one colour of the sky.", config=GenerateConfig(max_tokens=12)))
    assert output.error is None
    assert output.completion.strip()
