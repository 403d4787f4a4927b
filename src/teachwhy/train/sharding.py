"""How the training processes share the model: FSDP on CPU processes, and a record of what each one held.

``accelerate launch`` with an FSDP config sets ``ACCELERATE_USE_FSDP=true`` in every process, but accelerate
(1.15, ``AcceleratorState.__init__``) turns FSDP on only when the process group is of a GPU type
(``MULTI_GPU``, ``MULTI_XPU``, …); processes without a GPU form a ``MULTI_CPU`` group over gloo and an FSDP
config silently trains as DDP. PyTorch's FSDP2 (``fully_shard``) itself runs over gloo, so for that case
:func:`enable_fsdp_on_cpu` sets the state up as accelerate does on GPUs, and accelerate's and transformers'
own FSDP code (wrapping, broadcasting rank 0's weights, gathering full state dicts on save) does the rest.

:class:`ShardingRecord` writes ``sharding.json`` into each stage's trainer folder: how the stage was
distributed and how many parameter values each process held, so a run shows whether it was sharded.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from teachwhy.storage import atomic_write_json

SHARDING_NAME = "sharding.json"


def fsdp_requested() -> bool:
    """True when the launcher's config asked for FSDP (``accelerate launch`` sets this variable)."""
    return os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"


def weights_from_rank_zero() -> bool:
    """True on every process but rank 0 under FSDP2 with ``fsdp_cpu_ram_efficient_loading`` on.

    accelerate then broadcasts rank 0's weights while it shards the model (``fsdp2_load_full_state_dict``),
    so the other processes need the model's shapes only. transformers (5.24) still reads the full weights in
    every process; building the model there with uninitialised parameters instead keeps a node's memory at one
    copy of the weights rather than one per process. FSDP1 (not tested here) keeps transformers' loading.
    """
    return (
        fsdp_requested()
        and os.environ.get("FSDP_VERSION", "1") == "2"
        and os.environ.get("FSDP_CPU_RAM_EFFICIENT_LOADING", "false").lower() == "true"
        and torch.distributed.is_available()
        and torch.distributed.is_initialized()
        and torch.distributed.get_rank() != 0
    )


def enable_fsdp_on_cpu(state: Any) -> bool:
    """Turn FSDP on in accelerate's ``state`` for CPU processes when the launch config asked for it.

    Returns True if it did. On GPUs, or without an FSDP launch config, nothing changes: accelerate decided.
    ``state`` is the ``AcceleratorState`` of the trainer's freshly built ``Accelerator``.
    """
    from accelerate.state import PartialState
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    if not fsdp_requested() or state.distributed_type != DistributedType.MULTI_CPU:
        return False
    plugin = FullyShardedDataParallelPlugin()  # read from the FSDP_* variables the launcher set
    # what AcceleratorState.__init__ does for a GPU-type process group given an FSDP plugin
    if state.mixed_precision != "no":
        plugin.set_mixed_precision(state.mixed_precision)
    state.fsdp_plugin = plugin
    state.distributed_type = DistributedType.FSDP
    PartialState._shared_state["distributed_type"] = DistributedType.FSDP
    return True


def describe_sharding(model: torch.nn.Module) -> dict[str, Any]:
    """How ``model``'s parameters sit in this process: its class, and parameter values held here vs in all."""
    from torch.distributed.tensor import DTensor

    held = total = sharded = 0
    for param in model.parameters():
        if isinstance(param, DTensor):  # FSDP2: this process's shard of the parameter
            sharded += 1
            total += param.numel()
            held += param.to_local().numel()
        elif hasattr(param, "ds_numel"):  # DeepSpeed ZeRO-3: the full size, and this process's partition
            zero3: Any = param
            sharded += 1
            total += int(zero3.ds_numel)
            held += int(zero3.ds_tensor.numel())
        else:
            total += param.numel()
            held += param.numel()
    return {
        "model_class": type(model).__name__,
        "fsdp2": _is_fsdp2_module(model),
        "parameters": total,
        "parameters_held": held,
        "sharded_tensors": sharded,
    }


def _is_fsdp2_module(model: torch.nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


class ShardingRecord(TrainerCallback):
    """At the start of training, gathers :func:`describe_sharding` from every process; rank 0 writes it to
    ``<stage trainer folder>/sharding.json`` with the distributed type accelerate used.

    Args:
        weights_from_rank_zero: this process built its model without reading the weights (see
            :func:`weights_from_rank_zero`); recorded per process as ``weights``.
    """

    def __init__(self, *, weights_from_rank_zero: bool) -> None:
        self.weights = "broadcast from rank 0" if weights_from_rank_zero else "read from disk"

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        from accelerate.state import AcceleratorState

        model = kwargs["model"]
        mine = {**describe_sharding(model), "weights": self.weights}
        processes: list[dict[str, Any] | None] = [mine]
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            processes = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(processes, mine)
        if state.is_world_process_zero:
            accelerate_state = AcceleratorState()
            plugin = getattr(accelerate_state, "fsdp_plugin", None)
            atomic_write_json(
                Path(args.output_dir or ".") / SHARDING_NAME,
                {
                    "distributed_type": str(accelerate_state.distributed_type.value),
                    "fsdp_version": plugin.fsdp_version if plugin is not None else None,
                    "device": str(accelerate_state.device),
                    "backend": accelerate_state.backend,
                    "processes": processes,
                },
            )
