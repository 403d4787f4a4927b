"""How a training checkpoint is loaded for evaluation: ``eval.serve`` = ``embedded`` | ``hf`` | ``vllm``.

- ``embedded``: teachwhy's in-process provider (continuous batching), the default for an ``embedded`` target;
- ``hf``: Inspect's ``hf`` provider (transformers, in process);
- ``vllm``: Inspect's ``vllm`` provider, which runs ``vllm serve <checkpoint folder>`` as a subprocess on the
  first request and stops it when the checkpoint's evaluation closes the model, so one checkpoint's server
  never holds GPU memory while the next one loads. Port, GPU share, tensor parallelism and devices come from
  ``eval.vllm``.

Left unset, a checkpoint is served like the target: ``embedded``, ``vllm`` and ``sglang`` targets keep their
engine, every other target uses ``hf``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

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
    for name in ("port", "gpu_memory_utilization", "tensor_parallel_size", "devices", "max_model_len"):
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
