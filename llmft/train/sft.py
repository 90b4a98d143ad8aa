"""Supervised fine-tuning: chat data with loss on the assistant's tokens, via TRL's SFTTrainer."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig
from trl import SFTConfig, SFTTrainer

from llmft.data import build_sft_datasets
from llmft.data.templates import apply_template
from llmft.model.adapters import apply_finetuning
from llmft.model.loader import load_model, load_tokenizer
from llmft.track.run_log import JsonlLogCallback
from llmft.train.arguments import common_training_arguments
from llmft.train.fit import fit_and_save


def run_sft(cfg: DictConfig, run_dir: Path, title: str) -> dict[str, float]:
    tokenizer = load_tokenizer(cfg.model)
    apply_template(tokenizer, cfg.model.template)
    train_set, eval_set = build_sft_datasets(cfg, tokenizer)

    model = load_model(cfg, tokenizer)
    model = apply_finetuning(model, cfg.method, cfg.model, quantized=cfg.quantization.method != "none")

    args = SFTConfig(
        **common_training_arguments(cfg, run_dir, has_eval=eval_set is not None),
        max_length=cfg.data.cutoff_len,
        packing=cfg.data.packing,
        packing_strategy="bfd",  # padding-free packing: samples stay isolated (position_ids restart)
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=train_set,
        eval_dataset=eval_set,
        processing_class=tokenizer,
        callbacks=[JsonlLogCallback(run_dir)],
    )
    return fit_and_save(trainer, run_dir, cfg.method.finetuning_type, title)
