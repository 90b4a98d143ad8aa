"""The artefact a training run leaves: adapter/ (LoRA) or model/ (freeze, full), each with its
tokenizer and chat template, reloadable with plain transformers / PEFT."""

from __future__ import annotations

from pathlib import Path


def save_trained(model, tokenizer, run_dir: Path, finetuning_type: str) -> Path:
    """Save into run_dir/adapter or run_dir/model and return that directory."""
    if finetuning_type not in ("lora", "freeze", "full"):
        raise ValueError(f"finetuning_type={finetuning_type!r} is not one of: lora, freeze, full")
    out_dir = Path(run_dir) / ("adapter" if finetuning_type == "lora" else "model")
    config = model.config
    # Training turns the KV cache off; whoever reloads the result for generation wants it on.
    training_use_cache = config.use_cache
    config.use_cache = True
    try:
        model.save_pretrained(out_dir)
    finally:
        config.use_cache = training_use_cache
    tokenizer.save_pretrained(out_dir)
    return out_dir
