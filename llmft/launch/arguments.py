"""hardware.* -> the TrainingArguments fields of distributed training (DDP backend, FSDP2, DeepSpeed)."""

from __future__ import annotations

from omegaconf import DictConfig

from llmft.config.paths import resolve_local_path


def distributed_training_arguments(hardware: DictConfig, gradient_checkpointing: bool) -> dict:
    """Keyword arguments that override the common ones when hardware.strategy shards the model.

    FSDP checkpoints activations itself: method.gradient_checkpointing moves into its config (transformers
    refuses both at once).
    """
    arguments: dict = {"ddp_backend": None if hardware.backend == "auto" else hardware.backend}
    if hardware.strategy == "ddp":
        # LoRA and freeze use every trainable weight each step: skip DDP's unused-parameter search
        arguments["ddp_find_unused_parameters"] = False
    elif hardware.strategy == "fsdp":
        arguments.update(
            fsdp=True, fsdp_config=fsdp_config(hardware, gradient_checkpointing), gradient_checkpointing=False
        )
    elif hardware.strategy == "deepspeed":
        arguments["deepspeed"] = str(resolve_local_path(hardware.deepspeed_config))
    return arguments


def fsdp_config(hardware: DictConfig, activation_checkpointing: bool) -> dict:
    """transformers' fsdp_config for FSDP2 (accelerate's fully_shard), with full state dicts at save time."""
    config = {
        "version": 2,
        "reshard_after_forward": hardware.fsdp_reshard_after_forward,
        "cpu_offload": hardware.fsdp_cpu_offload,
        "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
        "state_dict_type": "FULL_STATE_DICT",
        "activation_checkpointing": activation_checkpointing,
    }
    if hardware.fsdp_transformer_layer_cls_to_wrap:
        config["transformer_layer_cls_to_wrap"] = list(hardware.fsdp_transformer_layer_cls_to_wrap)
    return config
