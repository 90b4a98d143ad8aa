"""The model to export: the base in the export dtype on the export device, with the adapter merged in."""

from __future__ import annotations

from typing import Any

import torch

from llmft.model.loader import DTYPE_NAMES, chat_tokenizer, is_reward_model, resolve_model_path


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
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    _check_device(cfg.task.export_device)
    tokenizer = chat_tokenizer(cfg.model)
    reward = is_reward_model(cfg.model)
    model_class = AutoModelForSequenceClassification if reward else AutoModelForCausalLM
    model = model_class.from_pretrained(
        resolve_model_path(cfg.model),
        dtype=export_dtype(cfg),
        device_map=cfg.task.export_device,
        revision=cfg.model.revision,
        trust_remote_code=cfg.model.trust_remote_code,
        **({"num_labels": 1} if reward else {}),
    )
    if reward:  # the score head reads each sequence's last non-pad token
        model.config.pad_token_id = tokenizer.pad_token_id
    if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:  # as training did (llmft.model.loader)
        model.resize_token_embeddings(len(tokenizer))
    if cfg.model.adapter_path:
        model = PeftModel.from_pretrained(model, cfg.model.adapter_path).merge_and_unload()
    return model.eval(), tokenizer
