"""GPTQ quantization of an exported model (task.export_quantization_bit): transformers' GPTQConfig,
calibrated on the selected datasets. Needs optimum + gptqmodel (checked at compose time) and a CUDA GPU."""

from __future__ import annotations

from pathlib import Path
from typing import Any

CALIBRATION_SAMPLES = 128


def check_gptq_device() -> None:
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError(
            "task.export_quantization_bit needs a CUDA GPU for GPTQ calibration and none is visible: export "
            "without it here (drop task.export_quantization_bit) and quantize on a GPU machine."
        )


def calibration_texts(cfg: Any, tokenizer: Any) -> list[str]:
    """Up to CALIBRATION_SAMPLES rows of the selected datasets, rendered with the chat template."""
    from llmft.data.loader import load_canonical

    rows = load_canonical(cfg.dataset, cfg.data, cfg.seed)
    texts = []
    for row in rows.select(range(min(CALIBRATION_SAMPLES, len(rows)))):
        if row["messages"]:
            system = [{"role": "system", "content": row["system"]}] if row["system"] else []
            texts.append(tokenizer.apply_chat_template(system + row["messages"], tokenize=False))
        elif row["text"]:
            texts.append(row["text"])
    return texts


def gptq_quantize(
    merged_dir: Path, out_dir: Path, bits: int, tokenizer: Any, texts: list[str], max_shard_size: str
) -> None:
    """Quantize the merged model saved in merged_dir into out_dir."""
    import torch
    from transformers import AutoModelForCausalLM, GPTQConfig

    config = GPTQConfig(bits=bits, dataset=texts, tokenizer=tokenizer)
    model = AutoModelForCausalLM.from_pretrained(
        merged_dir, quantization_config=config, device_map="auto", dtype=torch.float16
    )
    model.save_pretrained(out_dir, max_shard_size=max_shard_size)
    tokenizer.save_pretrained(out_dir)
