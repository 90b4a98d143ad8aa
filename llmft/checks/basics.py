"""Allowed values, keys the schema does not know, and combinations no method can train."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from llmft.checks.common import choice_problem
from llmft.config.errors import did_you_mean, schema_keys
from llmft.config.hubs import HUBS
from llmft.config.tasks import TASKS

CHOICES: dict[str, tuple[str, ...]] = {
    "task.name": tuple(TASKS),
    "method.stage": ("sft", "pt", "rm", "dpo", "kto", "ppo", "grpo", "rloo"),
    "method.pref_loss": ("sigmoid", "ipo", "hinge", "orpo", "simpo"),
    "method.finetuning_type": ("lora", "freeze", "full"),
    "model.dtype": ("auto", "float32", "bfloat16", "float16"),
    "model.attn_implementation": ("sdpa", "flash_attention_2", "eager"),
    "quantization.method": ("none", "bnb_4bit", "bnb_8bit", "gptq", "awq"),
    "task.export_dtype": ("auto", "float32", "bfloat16", "float16"),
    "task.export_device": ("cpu", "cuda", "auto"),
    "quantization.quant_type": ("nf4", "fp4"),
    "hardware.device": ("auto", "cpu", "cuda"),
    "hardware.precision": ("auto", "fp32", "bf16", "fp16"),
    "hardware.backend": ("auto", "nccl", "gloo"),
    "hardware.strategy": ("ddp", "fsdp", "deepspeed"),
    "hardware.scheduler": ("none", "slurm"),
    "data.mix_strategy": ("concat", "interleave_under", "interleave_over"),
    "generation.backend": ("hf", "vllm", "sglang"),
    "logger.wandb_mode": ("offline", "online", "disabled"),
    "logger.swanlab_mode": ("offline", "local", "online", "disabled"),
    "model.hub": HUBS,
}


DATASET_CHOICES: dict[str, tuple[str, ...]] = {
    "source": ("auto", "file", "hub"),
    "hub": HUBS,
}


def choices(cfg: DictConfig) -> list[str]:
    problems = [choice_problem(key, OmegaConf.select(cfg, key), allowed) for key, allowed in CHOICES.items()]
    for name, entry in cfg.dataset.items():
        problems += [
            choice_problem(f"dataset.{name}.{key}", entry[key], allowed)
            for key, allowed in DATASET_CHOICES.items()
        ]
    return [p for p in problems if p]


def unknown_top_level(cfg: DictConfig) -> list[str]:
    """`+key=value` bypasses the schema; catch what it added at the top level."""
    known = schema_keys("")
    return [
        f"Unknown top-level key '{key}'.{did_you_mean(key, known)} Valid keys: {', '.join(known)}"
        for key in cfg
        if key not in known
    ]


def combinations(cfg: DictConfig) -> list[str]:
    problems = []
    if cfg.quantization.method != "none" and cfg.method.finetuning_type != "lora":
        problems.append(
            f"quantization={cfg.quantization.method} needs LoRA: quantized weights cannot be trained directly, "
            f"but method.finetuning_type={cfg.method.finetuning_type}. Use method=lora_{cfg.method.stage} "
            "(QLoRA) or quantization=none."
        )
    if cfg.model.adapter_path and cfg.method.finetuning_type != "lora":
        problems.append(
            "model.adapter_path continues a LoRA adapter, but method.finetuning_type="
            f"{cfg.method.finetuning_type}. Use a lora_* method, or merge the adapter first (task=export)."
        )
    if cfg.hardware.device == "cpu" and cfg.hardware.precision == "fp16":
        problems.append("hardware.precision=fp16 is not supported on the CPU: use fp32 or bf16.")
    if cfg.method.max_steps <= 0 and cfg.method.num_train_epochs <= 0:
        problems.append("Set method.max_steps > 0 or method.num_train_epochs > 0: nothing would be trained.")
    if cfg.data.val_size < 0:
        problems.append(f"data.val_size={cfg.data.val_size} must be >= 0 (a fraction < 1 or a count).")
    probs = cfg.data.interleave_probs
    if probs is not None and len(probs) != len(cfg.dataset):
        problems.append(
            f"data.interleave_probs has {len(probs)} values for {len(cfg.dataset)} datasets "
            f"({', '.join(cfg.dataset)}): give one probability per dataset."
        )
    return problems


def dataset_selected(cfg: DictConfig) -> list[str]:
    return [] if cfg.dataset else ["No dataset selected: choose one with dataset=<name> (see conf/dataset/)."]
