"""Kahneman-Tversky optimisation on replies labelled desirable or undesirable, via TRL's KTOTrainer.

Preference pairs are accepted too: each becomes a desirable (chosen) and an undesirable (rejected)
row. With LoRA the reference is the base model with the adapter switched off (no second copy).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig
from transformers import TrainerCallback
from trl import KTOConfig, KTOTrainer

from llmft.data import build_kto_datasets
from llmft.model.loader import chat_tokenizer
from llmft.track.run_log import JsonlLogCallback
from llmft.train.arguments import common_training_arguments
from llmft.train.components import trainable_model
from llmft.train.dpo import use_base_as_reference
from llmft.train.fit import fit_and_save
from llmft.train.fused_head import score_labelled_positions_only_on_cpu


def build_kto_trainer(
    cfg: DictConfig, run_dir: Path, callbacks: Sequence[TrainerCallback] = ()
) -> KTOTrainer:
    score_labelled_positions_only_on_cpu()
    tokenizer = chat_tokenizer(cfg.model)  # TRL renders prompt and reply with it
    train_set, eval_set = build_kto_datasets(cfg, tokenizer)

    model = trainable_model(cfg, tokenizer)

    method = cfg.method
    args = KTOConfig(
        **common_training_arguments(cfg, run_dir, has_eval=eval_set is not None),
        max_length=cfg.data.cutoff_len,
        beta=method.pref_beta,
        desirable_weight=method.kto_desirable_weight,
        undesirable_weight=method.kto_undesirable_weight,
    )
    trainer = KTOTrainer(
        model=model,
        ref_model=None,  # LoRA: the adapter-disabled base; otherwise TRL loads a frozen copy
        args=args,
        train_dataset=train_set,
        eval_dataset=eval_set,
        processing_class=tokenizer,
        callbacks=[JsonlLogCallback(run_dir), *callbacks],
    )
    if cfg.model.adapter_path is None:  # a continued adapter keeps TRL's frozen copy of itself as reference
        use_base_as_reference(trainer)
    return trainer


def run_kto(
    cfg: DictConfig, run_dir: Path, title: str, callbacks: Sequence[TrainerCallback] = ()
) -> dict[str, float]:
    trainer = build_kto_trainer(cfg, run_dir, callbacks)
    return fit_and_save(trainer, run_dir, cfg.method.finetuning_type, title)
