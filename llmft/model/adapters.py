"""Which weights train: LoRA adapters, the last (or first) N decoder layers, or everything."""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from llmft.model.errors import ModelError
from llmft.model.fused_lora import fuse_lora_layers
from llmft.model.lora_variants import (
    init_lora_weights,
    mark_loraplus,
    modules_to_save,
    remember_pissa_initial_adapter,
)

logger = logging.getLogger(__name__)


def apply_finetuning(model, method_cfg: Any, model_cfg: Any, quantized: bool):
    """Mark the trainable parameters for method.finetuning_type (LoRA wraps the model in a
    PeftModel) and switch on gradient checkpointing when the method asks for it."""
    kind = method_cfg.finetuning_type  # lora | freeze | full (checked at compose time)
    if quantized and kind != "lora":
        raise ValueError(
            f"method.finetuning_type={kind} cannot train quantized weights; use a LoRA method "
            "(e.g. method=lora_sft) or quantization=none"
        )
    if kind == "lora":
        model = _apply_lora(model, method_cfg, model_cfg, quantized)
    elif kind == "freeze":
        _apply_freeze(model, method_cfg)
        _upcast_fp16_trainable(model)
    else:
        model.requires_grad_(True)
        _upcast_fp16_trainable(model)
    if method_cfg.gradient_checkpointing:
        enable_gradient_checkpointing(model)
    logger.info("%s: %s", kind, trainable_summary(model))
    return model


def without_adapter(model) -> Any:
    """The transformers model under a PEFT adapter (the model itself when it has none)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def trainable_summary(model) -> str:
    """'trainable 12,288 / 315,000 (3.90%)'; 4-bit weights count two parameters per stored byte."""
    trainable = total = 0
    for param in model.parameters():
        count = param.numel() * (2 if hasattr(param, "quant_state") else 1)
        total += count
        if param.requires_grad:
            trainable += count
    return f"trainable {trainable:,} / {total:,} ({100 * trainable / max(total, 1):.2f}%)"


def enable_gradient_checkpointing(model) -> None:
    """Recompute activations in backward; with frozen embeddings (LoRA, freeze) the inputs of the
    checkpointed blocks must require grad or no gradient reaches the trainable weights."""
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # the name since transformers 5.x
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    if not model.get_input_embeddings().weight.requires_grad:
        model.enable_input_require_grads()


# --- LoRA ---------------------------------------------------------------------------------


# Score heads of sequence-classification models: PEFT trains them whole (modules_to_save), never via LoRA.
SCORE_HEADS = ("score", "classifier")


def peft_task_type(model) -> str:
    """SEQ_CLS for a reward model: PEFT then keeps its new score head trainable and saves it with the adapter."""
    return "SEQ_CLS" if type(model).__name__.endswith("ForSequenceClassification") else "CAUSAL_LM"


def linear_module_names(model) -> list[str]:
    """Leaf names of every linear layer (bitsandbytes ones included) except the output or score head."""
    head = model.get_output_embeddings()
    names = {
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and module is not head and name.rsplit(".", 1)[-1] not in SCORE_HEADS
    }
    return sorted(names)


def resolve_lora_targets(model, method_cfg: Any, model_cfg: Any) -> list[str]:
    """method.lora_target ('auto' | 'all' | names) as module names, checked against the model."""
    target = method_cfg.lora_target
    if target == "auto":
        names = list(model_cfg.lora_target)
    elif target == "all":
        return linear_module_names(model)
    elif isinstance(target, str):
        names = [name.strip() for name in target.split(",") if name.strip()]
    else:
        names = list(target)

    module_names = [name for name, _ in model.named_modules()]
    unmatched = [
        name for name in names if not any(full == name or full.endswith(f".{name}") for full in module_names)
    ]
    if unmatched or not names:
        source = "model.lora_target (method.lora_target=auto)" if target == "auto" else "method.lora_target"
        raise ModelError(
            f"{source}: {unmatched or names} match no module of this model; its linear modules are: "
            f"{', '.join(linear_module_names(model))} (or use method.lora_target=all)"
        )
    return names


def _apply_lora(model, method_cfg: Any, model_cfg: Any, quantized: bool):
    from peft import LoraConfig, PeftModel, get_peft_model, prepare_model_for_kbit_training

    if quantized:  # norms to fp32, frozen k-bit weights; checkpointing comes after, for every type
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    if model_cfg.adapter_path:
        peft_model = PeftModel.from_pretrained(model, model_cfg.adapter_path, is_trainable=True)
    else:
        config = LoraConfig(
            task_type=peft_task_type(model),
            r=method_cfg.lora_rank,
            lora_alpha=method_cfg.lora_alpha,
            lora_dropout=method_cfg.lora_dropout,
            target_modules=resolve_lora_targets(model, method_cfg, model_cfg),
            use_dora=method_cfg.use_dora,
            use_rslora=method_cfg.use_rslora,
            init_lora_weights=init_lora_weights(method_cfg),
            modules_to_save=modules_to_save(model, method_cfg),
        )
        peft_model = get_peft_model(model, config)
        if method_cfg.pissa_init:
            remember_pissa_initial_adapter(peft_model)
    mark_loraplus(peft_model, method_cfg.loraplus_lr_ratio)
    if method_cfg.lora_fused:
        fuse_lora_layers(peft_model)
    return peft_model


# --- freeze -------------------------------------------------------------------------------


def decoder_layers(model) -> nn.ModuleList:
    """The stack of decoder blocks: the ModuleList as long as config.num_hidden_layers."""
    count = model.config.get_text_config().num_hidden_layers
    for module in model.modules():
        if isinstance(module, nn.ModuleList) and len(module) == count:
            return module
    raise ModelError(f"cannot find the {count} decoder layers of {type(model).__name__} for method=freeze")


def check_freeze_layers(count: int, total: int) -> None:
    """method.freeze_trainable_layers fits a decoder stack of `total` layers (checked from the model's
    config before any weight loads, and again on the loaded stack)."""
    if abs(count) > total:
        raise ModelError(
            f"method.freeze_trainable_layers={count} but the model has {total} decoder layers; "
            f"use a value between -{total} and {total}"
        )


def _selected_layers(layers: nn.ModuleList, count: int) -> list[nn.Module]:
    check_freeze_layers(count, len(layers))
    return list(layers)[-count:] if count > 0 else list(layers)[:-count]


def _leaf(path: str) -> str:
    return path.rsplit(".", 1)[-1]


def _modules_named(
    candidates: list[tuple[str, nn.Module]], wanted: list[str], key: str, extra_valid: tuple[str, ...] = ()
) -> list[nn.Module]:
    """The candidate modules whose last path component is one of `wanted`; unknown names fail."""
    valid = sorted({_leaf(path) for path, _ in candidates})
    missing = [name for name in wanted if name not in valid]
    if missing:
        raise ModelError(f"{key}: {missing} not found; valid names: {', '.join([*extra_valid, *valid])}")
    return [module for path, module in candidates if _leaf(path) in wanted]


def _apply_freeze(model, method_cfg: Any) -> None:
    model.requires_grad_(False)
    layers = decoder_layers(model)
    kinds = list(method_cfg.freeze_trainable_modules)
    for layer in _selected_layers(layers, method_cfg.freeze_trainable_layers):
        if kinds == ["all"]:
            layer.requires_grad_(True)
            continue
        inside = [(path, module) for path, module in layer.named_modules() if path]
        for module in _modules_named(inside, kinds, "method.freeze_trainable_modules", ("all",)):
            module.requires_grad_(True)

    # Extra modules live outside the decoder stack and hold weights themselves (embed_tokens, norm, lm_head).
    in_layers = {id(module) for module in layers.modules()}
    outside = [
        (path, module)
        for path, module in model.named_modules()
        if id(module) not in in_layers and next(module.parameters(recurse=False), None) is not None
    ]
    for module in _modules_named(
        outside, list(method_cfg.freeze_extra_modules), "method.freeze_extra_modules"
    ):
        module.requires_grad_(True)


def _upcast_fp16_trainable(model) -> None:
    """Trainable weights stored in fp16 break the fp16 gradient scaler: keep their master copy in fp32."""
    for param in model.parameters():
        if param.requires_grad and param.dtype == torch.float16:
            param.data = param.data.float()
