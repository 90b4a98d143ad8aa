"""The model every recipe trains (its tokenizer comes from llmft.model.loader.chat_tokenizer)."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from llmft.model.adapters import apply_finetuning, check_freeze_layers
from llmft.model.loader import is_quantized, load_model, load_model_config
from llmft.model.unpad import unpad_decoder


def trainable_model(cfg: DictConfig, tokenizer: Any, head: str = "causal_lm") -> Any:
    """The base model (quantized per cfg.quantization) with the method's LoRA adapter, frozen layers or
    full training set up."""
    if cfg.method.finetuning_type == "freeze":  # a mistake here should not wait for the weights
        layers = load_model_config(cfg.model).get_text_config().num_hidden_layers
        check_freeze_layers(cfg.method.freeze_trainable_layers, layers)
    model = load_model(cfg, tokenizer, head=head)
    model = apply_finetuning(model, cfg.method, cfg.model, quantized=is_quantized(cfg))
    if cfg.data.padding_free:  # the padded batches of TRL's trainers (pairs, KTO, rewards) skip their padding
        unpad_decoder(model)
    return model
