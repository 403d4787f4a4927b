"""`train.report_to`: experiment trackers pass through to TRL; tensorboard writes event files offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import pipeline_support
from teachwhy.config import TrainConfig, TrainStage, parse_config
from teachwhy.errors import UserError
from teachwhy.train import train_model
from teachwhy.train.trainer import sft_config


def test_report_to_takes_a_tracker_or_a_list_and_reaches_trl(tmp_path: Path) -> None:
    stage = TrainStage(name="sft", kind="chat")
    assert sft_config(TrainConfig(), stage, output_dir=tmp_path).report_to == []  # "none"
    config = parse_config({"train": {"report_to": ["tensorboard", "wandb", "trackio", "mlflow"]}})
    assert sft_config(config.train, stage, output_dir=tmp_path).report_to == [
        "tensorboard",
        "wandb",
        "trackio",
        "mlflow",
    ]
    assert sft_config(TrainConfig(report_to="wandb"), stage, output_dir=tmp_path).report_to == ["wandb"]
    with pytest.raises(UserError, match=r"train\.report_to"):
        parse_config({"train": {"report_to": "comet"}})
    with pytest.raises(UserError, match="'none' cannot be combined"):
        parse_config({"train": {"report_to": ["none", "wandb"]}})


def test_trackers_do_not_change_what_identifies_a_training_run() -> None:
    assert TrainConfig(report_to=["wandb"]).training_settings() == TrainConfig().training_settings()
    assert TrainConfig(learning_rate=1e-3).training_settings() != TrainConfig().training_settings()


def test_tensorboard_event_files_are_written_with_the_training_loss(
    tmp_path: Path, embedded_model_dir: Path
) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    model = pipeline_support.build_tiny_target(tmp_path / "tiny", embedded_model_dir, max_positions=256)
    data = tmp_path / "train.jsonl"
    rows = [
        {"id": f"d{i}", "kind": "documents", "text": f"Document {i} explains why honesty matters."}
        for i in range(6)
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = TrainConfig(
        stages=[TrainStage(name="midtrain", kind="documents", max_steps=3)],
        batch_size=2,
        max_length=64,
        save_steps=3,
        report_to="tensorboard",
        lora={"r": 4, "alpha": 8, "dropout": 0.0},
    )
    train_model(model=model, data=[data], out_dir=tmp_path / "run", config=config, progress=False)

    events = list((tmp_path / "run" / "trainer" / "midtrain").rglob("events.out.tfevents.*"))
    assert events, "no tensorboard event file was written"
    accumulator = EventAccumulator(str(events[0].parent))
    accumulator.Reload()
    losses = accumulator.Scalars("train/loss")
    assert [e.step for e in losses] == [1, 2, 3]
