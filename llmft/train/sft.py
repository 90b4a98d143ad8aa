"""Supervised fine-tuning: chat data with loss on the assistant's tokens, via TRL's SFTTrainer."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig
from transformers import TrainerCallback
from trl import SFTConfig, SFTTrainer

from llmft.data import build_sft_datasets
from llmft.track.run_log import JsonlLogCallback
from llmft.train.arguments import common_training_arguments
from llmft.train.components import chat_tokenizer, trainable_model
from llmft.train.fit import fit_and_save


def packing_enabled(cfg: DictConfig) -> bool:
    """method.packing (true in the pt presets) wins over data.packing."""
    return cfg.data.packing if cfg.method.packing is None else cfg.method.packing


def build_sft_trainer(
    cfg: DictConfig,
    run_dir: Path,
    callbacks: Sequence[TrainerCallback] = (),
    trainer_class: type[SFTTrainer] = SFTTrainer,
) -> SFTTrainer:
    tokenizer = chat_tokenizer(cfg.model)  # also saved with the result, for the chat that follows
    # Chat rows are masked to the assistant's tokens; text rows (pt) train on every token.
    train_set, eval_set = build_sft_datasets(cfg, tokenizer)

    model = trainable_model(cfg, tokenizer)

    args = SFTConfig(
        **common_training_arguments(cfg, run_dir, has_eval=eval_set is not None),
        max_length=cfg.data.cutoff_len,
        packing=packing_enabled(cfg),
        packing_strategy="bfd",  # padding-free packing: samples share a row but never attend to each other
    )
    return trainer_class(
        model=model,
        args=args,
        train_dataset=train_set,
        eval_dataset=eval_set,
        processing_class=tokenizer,
        callbacks=[JsonlLogCallback(run_dir), *callbacks],
    )


def run_sft(
    cfg: DictConfig, run_dir: Path, title: str, callbacks: Sequence[TrainerCallback] = ()
) -> dict[str, float]:
    trainer = build_sft_trainer(cfg, run_dir, callbacks)
    return fit_and_save(trainer, run_dir, cfg.method.finetuning_type, title)
