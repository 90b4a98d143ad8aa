"""The model to export: the base in the export dtype on the export device, with the adapter merged in."""

from __future__ import annotations

from typing import Any

import torch

from llmft.model.loader import DTYPE_NAMES, chat_tokenizer, is_reward_model, load_model


def export_dtype(cfg: Any) -> torch.dtype | str:
    """task.export_dtype, else model.dtype, else 'auto' (the dtype the checkpoint was saved in)."""
    name = cfg.task.export_dtype if cfg.task.export_dtype != "auto" else cfg.model.dtype
    return "auto" if name == "auto" else DTYPE_NAMES[name]


def _check_device(device: str) -> None:
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("task.export_device=cuda but no CUDA GPU is visible; use task.export_device=cpu")


def load_merged(cfg: Any):
    """(model, tokenizer): model.name_or_path with model.adapter_path merged in (when set), in eval mode;
    a reward model (method=lora_rm) keeps its score head.

    The tokenizer is the one chat/serve would use: the adapter's (training-time chat template) when it
    carries one, with model.template applied on top.
    """
    _check_device(cfg.task.export_device)
    tokenizer = chat_tokenizer(cfg.model)
    head = "sequence_classification" if is_reward_model(cfg.model) else "causal_lm"
    model = load_model(
        cfg,
        tokenizer,
        for_training=False,
        head=head,
        dtype=export_dtype(cfg),
        device_map=cfg.task.export_device,
    )
    if cfg.model.adapter_path:
        model = model.merge_and_unload()
    return model.eval(), tokenizer
