"""The training arguments every stage shares, read from the composed config; hardware.* adds those of
distributed training (DDP backend, FSDP2, DeepSpeed)."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from llmft.config.paths import resolve_local_path
from llmft.config.run_dir import CHECKPOINT_DIR
from llmft.model.loader import resolve_device, resolve_precision
from llmft.track.reporters import report_to


def common_training_arguments(cfg: DictConfig, run_dir: Path, has_eval: bool) -> dict:
    """Keyword arguments for any transformers TrainingArguments subclass (TRL's SFTConfig, DPOConfig, ...)."""
    method = cfg.method
    precision = resolve_precision(cfg.hardware)
    arguments = dict(
        output_dir=str(Path(run_dir) / CHECKPOINT_DIR),
        seed=cfg.seed,
        data_seed=cfg.seed,
        learning_rate=method.learning_rate,
        num_train_epochs=method.num_train_epochs,
        max_steps=method.max_steps,
        per_device_train_batch_size=method.per_device_train_batch_size,
        per_device_eval_batch_size=method.per_device_eval_batch_size,
        gradient_accumulation_steps=method.gradient_accumulation_steps,
        lr_scheduler_type=method.lr_scheduler_type,
        warmup_steps=method.warmup_steps,
        weight_decay=method.weight_decay,
        max_grad_norm=method.max_grad_norm,
        optim=method.optim,
        # TRL configs default to gradient checkpointing and bf16 even on CPU: always say what we want
        **activation_checkpointing(method.gradient_checkpointing),
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        use_cpu=resolve_device(cfg.hardware) == "cpu",
        logging_steps=method.logging_steps,
        logging_first_step=True,
        save_strategy="steps",
        save_steps=method.save_steps,
        save_total_limit=method.save_total_limit,
        eval_strategy="steps" if has_eval else "no",
        eval_steps=method.eval_steps or method.logging_steps,
        report_to=report_to(cfg.logger, run_dir),
        include_num_input_tokens_seen="non_padding",
        dataloader_num_workers=cfg.hardware.dataloader_num_workers,
        disable_tqdm=False,
    )
    return {**arguments, **distributed_training_arguments(cfg.hardware, method.gradient_checkpointing)}


def activation_checkpointing(enabled: bool) -> dict[str, bool]:
    """The TrainingArguments field that switches checkpointing: transformers 5.x renamed it, and the old
    name prints a FutureWarning on every run."""
    from transformers import TrainingArguments

    renamed = "activation_checkpointing" in TrainingArguments.__dataclass_fields__
    return {"activation_checkpointing" if renamed else "gradient_checkpointing": enabled}


# Rows per pass by default on the CPU: as many as fit in this many tokens (cutoff_len bounds a row). On
# the benchmark's 512-token packed rows, two per pass trained 6% more tokens/s than one (median of 7
# interleaved rounds, faster in 6) at 1.3x the peak RSS, and four no faster than two.
CPU_PASS_TOKENS = 1024


def resolved_per_pass(cfg: DictConfig, chosen: int | None, splits_exactly: bool, row_tokens: int) -> int:
    """The method's rows-per-pass knob (`chosen`), or by default, on the CPU and where a split keeps the
    step's loss, passes of at most CPU_PASS_TOKENS tokens (`row_tokens`: the most one row holds), since
    activations cost the most memory there; the whole batch otherwise and on GPUs."""
    if chosen is not None:
        return chosen
    batch = cfg.method.per_device_train_batch_size
    if not splits_exactly or resolve_device(cfg.hardware) != "cpu":
        return batch
    fitting = [
        rows for rows in range(2, batch + 1) if batch % rows == 0 and rows * row_tokens <= CPU_PASS_TOKENS
    ]
    return max(fitting, default=1)


def batch_in_passes(method: DictConfig, per_pass: int) -> dict[str, int]:
    """A step's batch as equal passes of `per_pass` rows (gradient accumulation): the optimizer sees the
    same rows per step; memory holds one pass's activations. The loss stays the step's only where it is
    a mean over rows (DPO pairs) or is divided by the step's token count (transformers' causal-LM loss)."""
    passes = method.per_device_train_batch_size // per_pass
    return {
        "per_device_train_batch_size": per_pass,
        "gradient_accumulation_steps": method.gradient_accumulation_steps * passes,
    }


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
            fsdp=True,
            fsdp_config=fsdp_config(hardware, gradient_checkpointing),
            **activation_checkpointing(False),
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
