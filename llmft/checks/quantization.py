"""Quantization and LoRA-variant settings that cannot be combined."""

from __future__ import annotations

import json

from omegaconf import DictConfig

from llmft.config.paths import resolve_local_path
from llmft.model.optional import PREQUANTIZED_BACKENDS, missing_packages

LORA_ONLY_KNOBS = ("use_dora", "use_rslora", "pissa_init", "loraplus_lr_ratio", "additional_target")


def deepspeed_stage(config_path: str | None) -> int | None:
    path = resolve_local_path(config_path) if config_path else None
    if path is None or not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8")).get("zero_optimization", {}).get("stage")


def quantization(cfg: DictConfig) -> list[str]:
    quant, problems = cfg.quantization.method, []
    if quant in PREQUANTIZED_BACKENDS:
        packages, install = PREQUANTIZED_BACKENDS[quant]
        if missing := missing_packages(packages):
            problems.append(
                f"quantization={quant} loads a pre-quantized checkpoint and needs {', '.join(missing)}: "
                f"`{install}` (the model's config.json must say quant_method: {quant})."
            )
    if quant != "none" and cfg.method.pissa_init:
        problems.append(
            f"method.pissa_init=true rewrites the base weights, which quantization={quant} keeps frozen: "
            "train PiSSA with quantization=none."
        )
    zero3 = cfg.hardware.strategy == "deepspeed" and deepspeed_stage(cfg.hardware.deepspeed_config) == 3
    if quant != "none" and zero3:
        problems.append(
            f"DeepSpeed ZeRO-3 cannot partition quantization={quant} weights: use hardware=deepspeed_z2 or "
            "hardware=multi_gpu for QLoRA, or quantization=none."
        )
    return problems


def lora_variants(cfg: DictConfig) -> list[str]:
    method, problems = cfg.method, []
    if method.finetuning_type != "lora":
        problems += [
            f"method.{knob} is a LoRA setting but method.finetuning_type={method.finetuning_type}: "
            f"use method=lora_{method.stage} or drop it."
            for knob in LORA_ONLY_KNOBS
            if method[knob] not in (False, None, [])
        ]
    if method.loraplus_lr_ratio is not None and method.loraplus_lr_ratio <= 0:
        ratio = method.loraplus_lr_ratio
        problems.append(f"method.loraplus_lr_ratio={ratio} must be > 0 (LoRA+ suggests 16).")
    if method.pissa_init and cfg.model.adapter_path:
        problems.append(
            "method.pissa_init=true initialises a new adapter but model.adapter_path continues an existing one: "
            "drop one of them."
        )
    return problems
