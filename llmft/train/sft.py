"""Supervised fine-tuning: chat data with loss on the assistant's tokens, on transformers' Trainer.

llmft tokenises, masks and packs the data itself (llmft.data, cached), so the trainer only batches:
padding-free by default (each batch one row, no pad token computed, attention kept per sample by
llmft.model.attention), padded with data.padding_free=false. The loss is the plain next-token loss over
the trained tokens, from logits computed only at the positions it reads (llmft.data.collate); nothing
else is computed from the logits each step.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig
from transformers import Trainer, TrainerCallback, TrainingArguments

from llmft.data import build_sft_datasets
from llmft.data.collate import PaddedCollator, PaddingFreeCollator
from llmft.data.pipeline import packing_enabled
from llmft.model.loader import chat_tokenizer, resolve_device
from llmft.model.logits import takes_logits_mask
from llmft.track.run_log import JsonlLogCallback
from llmft.train.arguments import batch_in_passes, common_training_arguments, resolved_per_pass
from llmft.train.components import trainable_model
from llmft.train.fit import fit_and_save

log = logging.getLogger(__name__)


def uses_liger_kernels(cfg: DictConfig) -> bool:
    """model.liger_kernel where a CUDA GPU runs the training (hardware.device=auto may find none)."""
    if cfg.model.liger_kernel and resolve_device(cfg.hardware) != "cuda":
        log.warning(
            "model.liger_kernel=true needs a CUDA GPU and none is in use: training without Liger's kernels"
        )
        return False
    return cfg.model.liger_kernel


def batch_collator(
    cfg: DictConfig, tokenizer, model, liger: bool = False
) -> PaddingFreeCollator | PaddedCollator:
    """Packed rows are always padding-free: a padded row would let its samples attend to each other.
    Logits are computed only where the loss reads them whenever the model allows it, except under Liger,
    whose fused cross-entropy never holds the logits (and takes no mask of positions)."""
    trained_logits_only = takes_logits_mask(model) and not liger
    if cfg.data.padding_free or packing_enabled(cfg):
        return PaddingFreeCollator(trained_logits_only)
    return PaddedCollator(tokenizer.pad_token_id, trained_logits_only)


def rows_per_pass(cfg: DictConfig, model) -> int:
    """method.rows_per_pass, or by default, on the CPU, packed rows (data.cutoff_len tokens each) in passes
    of about a thousand tokens for the models whose loss transformers divides by the step's token count
    (its own); the whole batch otherwise."""
    splits_exactly = packing_enabled(cfg) and takes_logits_mask(model)
    return resolved_per_pass(cfg, cfg.method.rows_per_pass, splits_exactly, cfg.data.cutoff_len)


def build_sft_trainer(
    cfg: DictConfig,
    run_dir: Path,
    callbacks: Sequence[TrainerCallback] = (),
    trainer_class: type[Trainer] = Trainer,
) -> Trainer:
    tokenizer = chat_tokenizer(cfg.model)  # also saved with the result, for the chat that follows
    # Chat rows are masked to the assistant's tokens; text rows (pt) train on every token.
    train_set, eval_set = build_sft_datasets(cfg, tokenizer)

    model = trainable_model(cfg, tokenizer)

    liger = uses_liger_kernels(cfg)
    collator = batch_collator(cfg, tokenizer, model, liger)
    args = TrainingArguments(
        **{
            **common_training_arguments(cfg, run_dir, has_eval=eval_set is not None),
            **batch_in_passes(cfg.method, rows_per_pass(cfg, model)),
            "use_liger_kernel": liger,  # the Trainer patches the kernels into the model as training starts
            "remove_unused_columns": False,  # the collator reads seq_lengths, which the model does not take
            # a padding-free row holds no padding, and a pad id equal to eos would undercount
            "include_num_input_tokens_seen": "all"
            if isinstance(collator, PaddingFreeCollator)
            else "non_padding",
        }
    )
    return trainer_class(
        model=model,
        args=args,
        data_collator=collator,
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
