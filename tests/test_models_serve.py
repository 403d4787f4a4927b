"""`eval.serve` chooses how checkpoints are evaluated; `vllm` goes through Inspect's vllm provider.

The vLLM wiring is tested end to end without a GPU: a `vllm` command on PATH starts the stand-in
OpenAI-compatible server (tests/openai_standin.py) exactly as Inspect launches `vllm serve`, so the test sees
the options each checkpoint's server was started with, the requests it answered, and that it was stopped
before the next checkpoint's server started.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from teachwhy.config import load_config
from teachwhy.constitution import example_constitution_path
from teachwhy.errors import UserError
from teachwhy.evals.run import run_honeypot_eval
from teachwhy.models.serve import (
    checkpoint_model,
    checkpoint_role,
    open_checkpoint,
    require_serving_engine,
)

TESTS = Path(__file__).parent


def _config(root: Path, *, target: str, serve: str | None, vllm: str = "{}") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(example_constitution_path(), root / "constitution.md")
    serve_line = f"serve: {serve}, " if serve else ""
    path = root / "teachwhy.yaml"
    path.write_text(
        f"constitution: constitution.md\n"
        f"models: {{target: {target}, judge: mockllm/model}}\n"
        f"eval: {{{serve_line}vllm: {vllm}, families: [blackmail], split: heldout, limit: 1, max_turns: 2,"
        f" max_tokens: 32, policy: rule, temperature: 0.0}}\n"
        "arms: [{name: baseline}]\n",
        encoding="utf-8",
    )
    return path


def test_serve_picks_the_engine_for_checkpoints(tmp_path: Path) -> None:
    folder = tmp_path / "step-000002"
    cases = {
        ("hf/Qwen/Qwen2.5-0.5B-Instruct", None): "hf",
        ("embedded", None): "embedded",
        ("vllm/Qwen/Qwen2.5-7B-Instruct", None): "vllm",
        ("embedded", "hf"): "hf",
        ("hf/Qwen/Qwen2.5-0.5B-Instruct", "vllm"): "vllm",
    }
    for i, ((target, serve), engine) in enumerate(cases.items()):
        config = load_config(_config(tmp_path / str(i), target=target, serve=serve))
        assert checkpoint_model(config, folder) == f"{engine}/{folder}"


def test_a_checkpoint_never_inherits_the_base_model_path(tmp_path: Path) -> None:
    config = load_config(_config(tmp_path, target="{model: hf/local, args: {model_path: /base}}", serve="hf"))
    role = checkpoint_role(config, f"hf/{tmp_path}")
    assert role.model == f"hf/{tmp_path}" and "model_path" not in role.args


def test_missing_vllm_is_one_line_naming_the_install(tmp_path: Path) -> None:
    if shutil.which("vllm") or _has_vllm():
        pytest.skip("vLLM is installed here")
    config_path = _config(tmp_path, target="hf/Qwen/Qwen2.5-0.5B-Instruct", serve="vllm")
    with pytest.raises(UserError, match=r"pip install vllm"):
        require_serving_engine(load_config(config_path))
    result = subprocess.run(
        [sys.executable, "-m", "teachwhy", "run", "-c", str(config_path)],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {config_path}: eval.serve: checkpoints are served with vLLM, which is not installed "
        "(pip install vllm)"
    ]
    assert not (tmp_path / "runs" / "stages").exists()  # refused before any stage ran


def _has_vllm() -> bool:
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


@pytest.fixture
def standin_vllm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """`vllm` importable and on PATH, both the stand-in; returns the stand-in's event log."""
    if _has_vllm():
        pytest.skip("a real vLLM is installed; the stand-in would shadow it")
    package = tmp_path / "site" / "vllm"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text('"""Stand-in: only its presence is checked."""\n')
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    command = bin_dir / "vllm"
    command.write_text(f'#!/bin/sh\nexec {sys.executable} {TESTS / "openai_standin.py"} "$@"\n')
    command.chmod(command.stat().st_mode | stat.S_IXUSR)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delitem(sys.modules, "vllm", raising=False)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    log = tmp_path / "standin.jsonl"
    monkeypatch.setenv("STANDIN_LOG", str(log))
    yield log
    sys.modules.pop("vllm", None)  # Inspect imported the stand-in package; later tests must not see it


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.mark.parametrize("fixed_port", [False, True], ids=["inspect-starts-it", "on-the-configured-port"])
def test_each_checkpoint_gets_its_own_vllm_server_started_and_stopped(
    fixed_port: bool, tmp_path: Path, standin_vllm: Path
) -> None:
    port = _free_port() if fixed_port else None
    vllm = (
        "{gpu_memory_utilization: 0.5, tensor_parallel_size: 1, max_model_len: 2048, args: {dtype: half}"
        + (f", port: {port}}}" if port else "}")
    )
    config = load_config(_config(tmp_path, target="hf/Qwen/Qwen2.5-0.5B-Instruct", serve="vllm", vllm=vllm))
    require_serving_engine(config)  # the stand-in package counts as installed
    folders = [tmp_path / "run" / "checkpoints" / f"step-00000{s}" for s in (2, 4)]
    for folder in folders:
        folder.mkdir(parents=True)
        model = checkpoint_model(config, folder)
        assert model == f"vllm/{folder}"
        with open_checkpoint(config, model, temperature=0.0, log_dir=tmp_path / folder.name) as target:
            results = run_honeypot_eval(config, target=target, log_dir=tmp_path / folder.name)
        overall = results.family_total("blackmail")
        assert overall is not None and overall.n == 1 and overall.errors == 0

    events = [json.loads(line) for line in standin_vllm.read_text().splitlines()]
    lifecycle = [(e["event"], e["model"]) for e in events if e["event"] != "request"]
    assert lifecycle == [
        ("start", str(folders[0])),
        ("stop", str(folders[0])),
        ("start", str(folders[1])),
        ("stop", str(folders[1])),
    ]
    for event in events:
        if event["event"] == "start":
            argv = event["argv"]
            options = dict(zip(argv[2::2], argv[3::2], strict=True))
            assert options["--gpu-memory-utilization"] == "0.5"
            assert options["--tensor-parallel-size"] == "1"
            assert options["--max-model-len"] == "2048"
            assert options["--dtype"] == "half"
            assert options["--host"] == "127.0.0.1"
            if port is not None:
                assert options["--port"] == str(port)
    served = {e["model"] for e in events if e["event"] == "request"}
    assert served == {str(f) for f in folders}
