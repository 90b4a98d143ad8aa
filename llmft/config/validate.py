"""Checks the schema's types cannot express: allowed choices, impossible combinations, missing files.

Runs right after composition, before torch is imported, and reports every problem at once.
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from llmft.config.errors import ConfigError, did_you_mean, schema_keys
from llmft.config.paths import is_local_dataset, resolve_local_path

CHOICES: dict[str, tuple[str, ...]] = {
    "task.name": ("train",),
    "method.stage": ("sft",),
    "method.finetuning_type": ("lora", "freeze", "full"),
    "model.dtype": ("auto", "float32", "bfloat16", "float16"),
    "model.attn_implementation": ("sdpa", "flash_attention_2", "eager"),
    "quantization.method": ("none", "bnb_4bit", "bnb_8bit"),
    "quantization.quant_type": ("nf4", "fp4"),
    "hardware.device": ("auto", "cpu", "cuda"),
    "hardware.precision": ("auto", "fp32", "bf16", "fp16"),
    "data.mix_strategy": ("concat", "interleave_under", "interleave_over"),
}
DATASET_CHOICES: dict[str, tuple[str, ...]] = {
    "formatting": ("alpaca", "sharegpt", "openai", "text"),
    "source": ("auto", "file", "hub"),
}


def _choice_problem(key: str, value: object, allowed: tuple[str, ...]) -> str | None:
    if value in allowed:
        return None
    return f"{key}={value!r} is not one of: {', '.join(allowed)}.{did_you_mean(str(value), allowed)}"


def _choices(cfg: DictConfig) -> list[str]:
    problems = [_choice_problem(key, OmegaConf.select(cfg, key), allowed) for key, allowed in CHOICES.items()]
    for name, entry in cfg.dataset.items():
        problems += [_choice_problem(f"dataset.{name}.{key}", entry[key], allowed)
                     for key, allowed in DATASET_CHOICES.items()]
    return [p for p in problems if p]


def _unknown_top_level(cfg: DictConfig) -> list[str]:
    """`+key=value` bypasses the schema; catch what it added at the top level."""
    known = schema_keys("")
    return [
        f"Unknown top-level key '{key}'.{did_you_mean(key, known)} Valid keys: {', '.join(known)}"
        for key in cfg
        if key not in known
    ]


def _combinations(cfg: DictConfig) -> list[str]:
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


def _datasets(cfg: DictConfig) -> list[str]:
    if not cfg.dataset:
        return ["No dataset selected: choose one with dataset=<name> (see conf/dataset/)."]
    problems = []
    for name, entry in cfg.dataset.items():
        if is_local_dataset(entry.path, entry.source) and resolve_local_path(entry.path) is None:
            problems.append(
                f"dataset.{name}.path: file '{entry.path}' not found (looked in the working directory and the "
                "project root). Fix the path, or set source: hub for a Hugging Face Hub dataset."
            )
    return problems


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError listing every problem found in the composed config."""
    problems = _unknown_top_level(cfg) + _choices(cfg) + _combinations(cfg) + _datasets(cfg)
    if problems:
        raise ConfigError("\n  - ".join(["the composed config is invalid:", *problems]))
