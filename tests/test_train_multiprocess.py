"""Training under `accelerate launch` with two processes ends where one process ends.

Each test launches the real command line (`accelerate launch --num_processes 2 -m teachwhy train`) on a tiny
random Llama, and compares the final merged weights with a one-process run of the same global batch (one
process × 4 rows vs two processes × 2 rows). Tolerance: every weight within 1e-4 (absolute) of the one-process
run; fp32, so the only difference is the order of floating-point sums. The weights themselves move by far more
than that in the 4 steps, so a run that did not train cannot pass.

All of it runs on CPU (gloo). DDP is accelerate's own CPU path. FSDP is not: accelerate (1.15) enables
FSDP only for GPU-type process groups (`AcceleratorState.__init__`), so teachwhy enables it for CPU processes
when the launch config asks for it (`teachwhy.train.sharding`). Each stage records how its parameters were
distributed (`trainer/<stage>/sharding.json`), and the test checks that record: under `fsdp.yaml` every
process held an FSDP2 module whose parameters are DTensor shards, half of the model each, not a DDP replica.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

import pipeline_support
import teachwhy
from teachwhy.config import LoraConfig, TrainConfig, TrainStage
from teachwhy.train import train_model

pytestmark = pytest.mark.multiprocess

REPO = Path(__file__).resolve().parents[1]
TOLERANCE = 1e-4
GLOBAL_BATCH = 4


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory, embedded_model_dir: Path) -> Path:
    return pipeline_support.build_tiny_target(
        tmp_path_factory.mktemp("tiny"), embedded_model_dir, max_positions=256
    )


@pytest.fixture(scope="module")
def data_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "train.jsonl"
    rows: list[dict[str, Any]] = [
        {
            "id": f"doc{i}",
            "kind": "documents",
            "text": f"Case {i}. Honest reports let others check the work. " * 2,
        }
        for i in range(8)
    ] + [
        {
            "id": f"adv{i}",
            "kind": "advice",
            "messages": [
                {"role": "user", "content": f"May I hide mistake {i} from my team?"},
                {"role": "assistant", "content": "No: tell them, so nobody builds on the error."},
            ],
        }
        for i in range(8)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _settings(method: str) -> dict[str, Any]:
    return {
        "method": method,
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
        "stages": [{"name": "train", "kind": "mixed", "max_steps": 4}],
        "learning_rate": 1e-2,
        "lr_scheduler": "constant",
        "warmup_ratio": 0.0,
        "max_length": 96,
        "save_steps": 2,
        "bf16": False,
    }


@pytest.fixture(scope="module")
def one_process_run(
    tmp_path_factory: pytest.TempPathFactory, tiny_model: Path, data_file: Path
) -> Callable[[str], Path]:
    """The one-process reference run for a method, trained once and shared by the launches compared to it."""
    runs: dict[str, Path] = {}

    def run(method: str) -> Path:
        if method not in runs:
            runs[method] = tmp_path_factory.mktemp(f"one-{method}") / "out"
            _one_process(method, tiny_model, data_file, runs[method])
        return runs[method]

    return run


def _one_process(method: str, model: Path, data: Path, out: Path) -> None:
    settings = _settings(method)
    config = TrainConfig(
        **{
            **settings,
            "lora": LoraConfig(**settings["lora"]),
            "stages": [TrainStage(**s) for s in settings["stages"]],
            "batch_size": GLOBAL_BATCH,
        }
    )
    train_model(model=model, data=[data], out_dir=out, config=config, progress=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _two_processes(
    method: str, model: Path, data: Path, root: Path, *, accelerate_config: str | None = None
) -> subprocess.CompletedProcess[str]:
    config = root / "teachwhy.yaml"
    train = {**_settings(method), "batch_size": GLOBAL_BATCH // 2}
    config.write_text(json.dumps({"models": {"target": f"hf/{model}"}, "train": train}), encoding="utf-8")
    # not `--cpu`: accelerate runs a single process with it; torchrun's processes find no GPU and use gloo
    launch = [sys.executable, "-m", "accelerate.commands.launch"]
    if accelerate_config is not None:
        launch += ["--config_file", str(REPO / accelerate_config)]
    else:
        launch += ["--multi_gpu"]
    launch += [
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(_free_port()),
        "-m",
        "teachwhy",
        "train",
        "-c",
        str(config),
        "--data",
        str(data),
        "--out",
        str(root / "out"),
    ]
    src = str(Path(teachwhy.__file__).resolve().parents[1])
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
        "COLUMNS": "200",
    }
    return subprocess.run(launch, cwd=root, env=env, capture_output=True, text=True, timeout=300, check=False)


def _assert_same_weights(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> None:
    assert got.keys() == want.keys()
    worst = max((got[k].float() - want[k].float()).abs().max().item() for k in want)
    assert worst < TOLERANCE, f"largest weight difference {worst:.2e}"


def _check_sharding(stage_dir: Path, distributed_type: str) -> None:
    """Each process's share of the parameters while training, as the stage recorded it."""
    record = json.loads((stage_dir / "sharding.json").read_text())
    assert record["distributed_type"] == distributed_type
    assert record["backend"] == "gloo"
    processes = record["processes"]
    assert len(processes) == 2
    total = processes[0]["parameters"]
    if distributed_type == "MULTI_CPU":  # DDP: every process holds the whole model
        assert all(p["parameters_held"] == total and p["sharded_tensors"] == 0 for p in processes)
        assert not any(p["fsdp2"] for p in processes)
        assert all(p["weights"] == "read from disk" for p in processes)
        return
    assert all(p["parameters"] == total for p in processes)
    assert all(p["parameters_held"] < total and p["sharded_tensors"] > 0 for p in processes)
    assert sum(p["parameters_held"] for p in processes) >= total  # together they hold the whole model
    if distributed_type == "FSDP":
        assert record["fsdp_version"] == 2
        # fsdp.yaml's cpu_ram_efficient_loading: rank 1 built an empty model and got rank 0's weights
        assert [p["weights"] for p in processes] == ["read from disk", "broadcast from rank 0"]
        assert all(p["fsdp2"] and p["model_class"].startswith("FSDP") for p in processes)
        assert [p["parameters_held"] for p in processes] == [total // 2, total // 2]


def _check_run(out: Path, reference_out: Path) -> None:
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-000002", "step-000004"]
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    reference_log = [
        json.loads(line) for line in (reference_out / "train_log.jsonl").read_text().splitlines()
    ]
    assert [r["step"] for r in log] == [1, 2, 3, 4]  # rank 0 alone writes the log
    assert [r["epoch"] for r in log] == [r["epoch"] for r in reference_log]  # each process saw half
    # tokens are summed over both processes: the same count as one process seeing the whole batch
    assert [r["tokens"] for r in log] == [r["tokens"] for r in reference_log]
    assert json.loads((out / "result.json").read_text())["steps"] == 4


DEEPSPEED = pytest.mark.skipif(
    importlib.util.find_spec("deepspeed") is None, reason="deepspeed is not installed"
)


@pytest.mark.parametrize(
    ("label", "method", "accelerate_config", "distributed_type"),
    [
        ("ddp-lora", "lora", None, "MULTI_CPU"),
        ("fsdp-full", "full", "examples/accelerate/fsdp.yaml", "FSDP"),
        ("fsdp-lora", "lora", "examples/accelerate/fsdp.yaml", "FSDP"),
        pytest.param(
            "zero3-full", "full", "examples/accelerate/deepspeed_zero3.yaml", "DEEPSPEED", marks=DEEPSPEED
        ),
    ],
)
def test_two_processes_end_with_the_weights_of_one(
    label: str,
    method: str,
    accelerate_config: str | None,
    distributed_type: str,
    tiny_model: Path,
    data_file: Path,
    one_process_run: Callable[[str], Path],
    tmp_path: Path,
) -> None:
    reference = one_process_run(method)
    want = load_file(str(reference / "checkpoints" / "step-000004" / "model.safetensors"))
    root = tmp_path / "two"
    root.mkdir()
    done = _two_processes(method, tiny_model, data_file, root, accelerate_config=accelerate_config)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    _check_run(root / "out", reference)
    final_state = root / "out" / "trainer" / "train" / "checkpoint-4"
    assert (final_state / "rng_state_1.pth").exists()  # rank 1 trained too
    _check_sharding(root / "out" / "trainer" / "train", distributed_type)
    got = load_file(str(root / "out" / "checkpoints" / "step-000004" / "model.safetensors"))
    _assert_same_weights(got, want)
    start = load_file(str(tiny_model / "model.safetensors"))
    moved = max((want[k].float() - start[k].float()).abs().max().item() for k in want)
    assert moved > 100 * TOLERANCE, f"training moved no weight by more than {moved:.2e}"
