"""The artefact a training run leaves: adapter/ (LoRA) or model/ (freeze, full), each with its
tokenizer and chat template, reloadable with plain transformers / PEFT."""

from __future__ import annotations

from pathlib import Path

from llmft.config.run_dir import result_dir
from llmft.model.lora_variants import save_pretrained


def save_trained(model, tokenizer, run_dir: Path, finetuning_type: str) -> Path:
    """Save into run_dir/adapter or run_dir/model and return that directory."""
    out_dir = result_dir(run_dir, finetuning_type)
    config = model.config
    # Training turns the KV cache off; whoever reloads the result for generation wants it on.
    training_use_cache = config.use_cache
    config.use_cache = True
    # A PEFT model may hold helper adapters (TRL's frozen "ref" copy in dpo/kto): save the trained one only.
    selected = {"selected_adapters": [model.active_adapter]} if hasattr(model, "peft_config") else {}
    try:
        save_pretrained(model, out_dir, **selected)  # PiSSA adapters become plain LoRA here
    finally:
        config.use_cache = training_use_cache
    tokenizer.save_pretrained(out_dir)
    return out_dir
