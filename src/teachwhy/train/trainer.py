"""TRL wiring: the SFTTrainer we train with, its settings from ``TrainConfig``, and how models are loaded.

Rows arrive already tokenized, labelled and packed (see :mod:`teachwhy.train.packing`), so TRL's own dataset
preparation is skipped and our collator is used; everything else (optimizer, schedule, gradient accumulation,
mixed precision, PEFT, accelerate/FSDP/DeepSpeed, checkpoint state) is TRL's and transformers'.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedModel
from trl.trainer.sft_config import SFTConfig
from trl.trainer.sft_trainer import SFTTrainer

from teachwhy.config import TrainConfig, TrainStage
from teachwhy.train.callbacks import TokenCounter
from teachwhy.train.sharding import enable_fsdp_on_cpu

DDP_TIMEOUT_S = 4 * 3600  # collective timeout: bounds how long ranks wait for rank 0's checkpoint merge


def use_bf16(config: TrainConfig) -> bool:
    """bf16 as configured; ``None`` means on when the GPU supports it, off on CPU."""
    if config.bf16 is not None:
        return config.bf16
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def load_model(path: str | Path, config: TrainConfig, *, shapes_only: bool = False) -> PreTrainedModel:
    """Load the model to train. LoRA under bf16 keeps the frozen base in bf16; otherwise weights are fp32.

    ``shapes_only`` builds the model without reading its weights: parameters are left uninitialised (memory
    the operating system backs only once written), buffers are computed as usual. For the processes that
    receive rank 0's weights when FSDP shards the model
    (see :func:`teachwhy.train.sharding.weights_from_rank_zero`).
    """
    kwargs: dict[str, Any] = {
        "dtype": torch.bfloat16 if use_bf16(config) and config.method == "lora" else torch.float32
    }
    if config.attn_implementation is not None:
        kwargs["attn_implementation"] = config.attn_implementation
    if shapes_only:
        return _empty_model(path, kwargs)
    model: PreTrainedModel = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    return model


def _empty_model(path: str | Path, kwargs: dict[str, Any]) -> PreTrainedModel:
    from accelerate import init_empty_weights

    model_config = AutoConfig.from_pretrained(path)
    with init_empty_weights(include_buffers=False):
        model: PreTrainedModel = AutoModelForCausalLM.from_config(model_config, **kwargs)  # type: ignore[no-untyped-call]
    # real (uninitialised) storage, not the meta device: accelerate matches the optimizer's parameters to the
    # sharded ones by their data pointers, which meta tensors do not have
    for module in model.modules():
        for name, param in list(module.named_parameters(recurse=False)):
            if param.is_meta:
                empty = torch.empty_like(param, device="cpu")
                setattr(module, name, torch.nn.Parameter(empty, requires_grad=param.requires_grad))
    model.tie_weights()  # parameters created under init_empty_weights, or replaced above, are not tied
    return model


def peft_config(config: TrainConfig) -> Any:
    """The PEFT LoRA config for ``config.lora``."""
    from peft import LoraConfig

    lora = config.lora
    return LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        task_type="CAUSAL_LM",
    )


def sft_config(config: TrainConfig, stage: TrainStage, *, output_dir: Path) -> SFTConfig:
    """TRL settings for one stage. CPU and precision settings are explicit: TRL defaults to bf16 and
    checkpointing."""
    cuda = torch.cuda.is_available()
    trackers = config.report_to if isinstance(config.report_to, str) else [str(t) for t in config.report_to]
    return SFTConfig(
        output_dir=str(output_dir),
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation,
        learning_rate=stage.learning_rate or config.learning_rate,
        lr_scheduler_type=config.lr_scheduler,
        warmup_steps=config.warmup_ratio,  # a float below 1 is a fraction of the stage's steps
        weight_decay=config.weight_decay,
        max_grad_norm=config.max_grad_norm,
        num_train_epochs=stage.epochs,
        max_steps=stage.max_steps or -1,
        seed=config.seed,
        data_seed=config.seed,
        bf16=use_bf16(config),
        fp16=False,
        use_cpu=not cuda,
        activation_checkpointing=config.gradient_checkpointing,
        dataloader_pin_memory=cuda,
        logging_steps=1,
        save_strategy="no",  # CheckpointCadence decides when to save
        save_total_limit=None,  # rotation happens after a checkpoint is merged and marked complete
        report_to=trackers,
        # other ranks wait at a barrier while rank 0 merges a checkpoint, which for a large model on CPU takes
        # far longer than the default 30 minutes' collective timeout allows on slow disks
        ddp_timeout=DDP_TIMEOUT_S,
        disable_tqdm=True,
        remove_unused_columns=False,
        dataset_kwargs={"skip_prepare_dataset": True},
        packing=False,
        padding_free=False,
        max_length=None,
        shuffle_dataset=False,
    )


class SourceCountingSFTTrainer(SFTTrainer):
    """SFTTrainer that counts the tokens it trains on per data source (summed over processes)."""

    def __init__(self, *args: Any, counter: TokenCounter, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.token_counter = counter

    def create_accelerator_and_postprocess(self) -> None:
        super().create_accelerator_and_postprocess()
        if enable_fsdp_on_cpu(self.accelerator.state):
            # build the accelerator again on the FSDP state, so the trainer's own FSDP checks and flags apply
            super().create_accelerator_and_postprocess()

    def compute_loss(
        self,
        model: Any,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        source_tokens = inputs.pop("source_tokens", None)
        if source_tokens is not None and getattr(self.model, "training", False):
            self.token_counter.add(self.accelerator.reduce(source_tokens.sum(dim=0), reduction="sum").cpu())
        return super().compute_loss(  # type: ignore[no-untyped-call]
            model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
        )
