"""Reward modelling: a one-output score head learns to rank chosen above rejected, via TRL's RewardTrainer.

The result loads where reward models are used: `task=serve` (/v1/score, llmft.model.reward) and a later
ppo run's `method.reward_model`. LoRA saves adapter/ with task_type SEQ_CLS and the trained score head;
full and freeze save model/ as a *ForSequenceClassification checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig
from torch import nn
from transformers import TrainerCallback
from trl import RewardConfig, RewardTrainer

from llmft.data import build_reward_datasets
from llmft.model.adapters import SCORE_HEADS
from llmft.model.loader import chat_tokenizer, is_quantized, resolve_dtype
from llmft.track.run_log import JsonlLogCallback
from llmft.train.arguments import common_training_arguments
from llmft.train.components import trainable_model
from llmft.train.fit import fit_and_save


def score_head(model) -> nn.Module:
    for name in SCORE_HEADS:
        if isinstance(head := getattr(model, name, None), nn.Module):
            return head
    raise ValueError(f"{type(model).__name__} has no score head ({' or '.join(SCORE_HEADS)})")


class CachedPairsRewardTrainer(RewardTrainer):
    """TRL's RewardTrainer on the pairs llmft tokenised and filtered into its data cache
    (llmft.data.preference.reward_pairs), taken as they are: TRL would pass over them again at every
    start, to filter them by length, writing another index file into the cache each time."""

    def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
        return dataset


def build_rm_trainer(
    cfg: DictConfig, run_dir: Path, callbacks: Sequence[TrainerCallback] = ()
) -> RewardTrainer:
    tokenizer = chat_tokenizer(cfg.model)  # prompt + reply are rendered with it, as /v1/score will
    train_set, eval_set = build_reward_datasets(cfg, tokenizer)

    model = trainable_model(cfg, tokenizer, head="sequence_classification")
    if cfg.method.finetuning_type == "freeze":  # the head starts random: it trains whatever else is frozen
        score_head(model).requires_grad_(True)

    args = RewardConfig(
        **common_training_arguments(cfg, run_dir, has_eval=eval_set is not None),
        max_length=cfg.data.cutoff_len,  # longer pairs are dropped, not cut: the score reads the last token
    )
    trainer = CachedPairsRewardTrainer(
        model=model,
        args=args,
        train_dataset=train_set,
        eval_dataset=eval_set,  # eval_accuracy: share of held-out pairs scored chosen > rejected
        processing_class=tokenizer,
        callbacks=[JsonlLogCallback(run_dir), *callbacks],
    )
    if is_quantized(cfg):  # TRL moves a k-bit model's trainable weights to bf16; the head must match
        score_head(trainer.model).to(resolve_dtype(cfg.model, cfg.hardware))
    return trainer


def run_rm(
    cfg: DictConfig, run_dir: Path, title: str, callbacks: Sequence[TrainerCallback] = ()
) -> dict[str, float]:
    trainer = build_rm_trainer(cfg, run_dir, callbacks)
    return fit_and_save(trainer, run_dir, cfg.method.finetuning_type, title)
