"""How a training checkpoint is loaded for evaluation: ``eval.serve`` = ``embedded`` | ``hf`` | ``vllm``.

- ``embedded``: teachwhy's in-process provider (continuous batching), the default for an ``embedded`` target;
- ``hf``: Inspect's ``hf`` provider (transformers, in process);
- ``vllm``: Inspect's ``vllm`` provider, which runs ``vllm serve <checkpoint folder>`` as a subprocess on the
  first request and stops it when the checkpoint's evaluation closes the model, so one checkpoint's server
  never holds GPU memory while the next one loads. Port, GPU share, tensor parallelism and devices come from
  ``eval.vllm``. Inspect picks a free port for the servers it starts (a port given to it means "a server
  already runs there"), so with ``eval.vllm.port`` set teachwhy starts and stops ``vllm serve`` itself on
  that port and points Inspect's ``vllm`` provider at it.

Left unset, a checkpoint is served like the target: ``embedded``, ``vllm`` and ``sglang`` targets keep their
engine, every other target uses ``hf``.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from inspect_ai.model import Model

from teachwhy.config import ExperimentConfig, RoleModel
from teachwhy.errors import UserError

SAME_ENGINE = ("embedded", "vllm", "sglang")


def serving_engine(config: ExperimentConfig) -> str:
    """The provider that serves checkpoints: ``eval.serve``, or the target's engine when unset."""
    if config.eval.serve is not None:
        return config.eval.serve
    provider = config.models.target.model.partition("/")[0]
    return provider if provider in SAME_ENGINE else "hf"


def require_serving_engine(config: ExperimentConfig) -> None:
    """Fail before any work when checkpoints are to be served by an engine that is not installed.

    Raises:
        UserError: ``vllm`` serving without the ``vllm`` package.
    """
    if serving_engine(config) == "vllm" and importlib.util.find_spec("vllm") is None:
        key = "eval.serve" if config.eval.serve is not None else "models.target"
        raise UserError(
            "checkpoints are served with vLLM, which is not installed (pip install vllm)",
            file=config.source,
            key=key,
        )


def checkpoint_model(config: ExperimentConfig, folder: Path) -> str:
    """The Inspect model string that evaluates the checkpoint in ``folder``."""
    return f"{serving_engine(config)}/{folder}"


def vllm_server_args(config: ExperimentConfig) -> dict[str, Any]:
    """Inspect ``vllm`` provider arguments from ``eval.vllm`` (they become ``vllm serve`` options)."""
    settings = config.eval.vllm
    args: dict[str, Any] = {
        "host": settings.host,
        "timeout": settings.startup_timeout,
        "lazy_init": True,  # the server starts with the checkpoint's first request
        **settings.args,
    }
    # not the port: to Inspect's provider a port means "a server already runs there" (see vllm_server)
    for name in ("gpu_memory_utilization", "tensor_parallel_size", "devices", "max_model_len"):
        value = getattr(settings, name)
        if value is not None:
            args[name] = value
    return args


def checkpoint_role(config: ExperimentConfig, model: str) -> RoleModel:
    """The target role for one checkpoint's evaluation (``model`` from :func:`checkpoint_model`).

    A vLLM checkpoint gets the server settings of ``eval.vllm`` instead of the target's own provider
    arguments (which belong to the target's engine, e.g. ``hf`` device settings); other engines keep them,
    except ``model_path``, which names the base model's folder.
    """
    target = config.models.target
    if model.startswith("vllm/"):
        return target.model_copy(
            update={"model": model, "args": vllm_server_args(config), "base_url": None, "api_key_env": None}
        )
    # model_path names the base model's folder for hf/local targets: the checkpoint's folder replaces it
    args = {k: v for k, v in target.args.items() if k != "model_path"}
    return target.model_copy(update={"model": model, "args": args})


@contextmanager
def open_checkpoint(
    config: ExperimentConfig, model: str, *, temperature: float | None, log_dir: Path
) -> Iterator[Model]:
    """The Inspect model for one checkpoint (``model`` from :func:`checkpoint_model`), closed afterwards.

    Closing frees an in-process model's weights, or stops the checkpoint's vLLM server.
    """
    from teachwhy.models.roles import resolve_model

    role = checkpoint_role(config, model)
    port = config.eval.vllm.port
    if model.startswith("vllm/") and port is not None:
        with vllm_server(config, model.removeprefix("vllm/"), log_path=log_dir / "vllm-server.log") as url:
            role = role.model_copy(update={"base_url": url, "args": {}})
            with resolve_model(role, name="target", temperature=temperature, memoize=False) as target:
                yield target
        return
    with resolve_model(role, name="target", temperature=temperature, memoize=False) as target:
        yield target


@contextmanager
def vllm_server(config: ExperimentConfig, folder: str, *, log_path: Path) -> Iterator[str]:
    """Run ``vllm serve folder`` on ``eval.vllm.port`` until the block ends; yields its ``/v1`` URL.

    Raises:
        UserError: the server exited, or did not answer within ``startup_timeout`` (its output is in
            ``log_path``).
    """
    settings = config.eval.vllm
    assert settings.port is not None
    key = os.environ.get("VLLM_API_KEY", "inspectai")  # what Inspect's vllm provider sends
    command = [
        "vllm",
        "serve",
        folder,
        "--host",
        settings.host,
        "--port",
        str(settings.port),
        "--api-key",
        key,
    ]
    given = ("host", "port", "timeout", "lazy_init")  # on the command line above, or Inspect's own
    options = {k: v for k, v in vllm_server_args(config).items() if k not in given}
    env = dict(os.environ)
    devices = options.pop("devices", None)
    if devices is not None:
        env["CUDA_VISIBLE_DEVICES"] = str(devices)
        options.setdefault("tensor_parallel_size", len(str(devices).split(",")))
    command += _cli_options(options)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        url = f"http://{settings.host}:{settings.port}"
        _wait_until_serving(process, url, key, timeout=settings.startup_timeout, log_path=log_path)
        yield f"{url}/v1"
    finally:
        _stop(process)


def _cli_options(options: dict[str, Any]) -> list[str]:
    """``vllm serve`` options from keyword arguments: ``max_model_len=8192`` → ``--max-model-len 8192``."""
    out: list[str] = []
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        if value is True or value is None:
            out.append(flag)
        elif value is not False:
            out += [flag, str(value)]
    return out


def _wait_until_serving(
    process: subprocess.Popen[bytes], url: str, key: str, *, timeout: float, log_path: Path
) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise UserError(
                f"vllm serve exited with code {process.returncode} before it answered; "
                f"its output: {log_path}",
                key="eval.vllm",
            )
        try:
            if httpx.get(
                f"{url}/v1/models", headers={"Authorization": f"Bearer {key}"}, timeout=5
            ).is_success:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise UserError(
        f"vllm serve did not answer at {url} within {timeout:.0f}s (raise eval.vllm.startup_timeout); "
        f"its output: {log_path}",
        key="eval.vllm.startup_timeout",
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the server and the engine processes it started (its whole process group)."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
