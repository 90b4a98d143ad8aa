"""Direct preference optimisation and its variants on chosen/rejected pairs, via TRL.

method.pref_loss picks the objective:
- sigmoid (DPO), ipo, hinge: TRL's DPOTrainer (as llmft.train.dpo_trainer adapts it) against a frozen
  reference. With a new LoRA adapter the reference is the base model with the adapter switched off, so
  no second copy of the weights is held; continuing model.adapter_path, it is a frozen copy of that
  adapter (adapter-sized); full and freeze load a frozen copy of the model.
- orpo, simpo: reference-free, via trl.experimental's ORPOTrainer and CPOTrainer (SimPO = CPO's simpo
  loss without its SFT term); no reference model at all.
method.pref_ftx adds an SFT loss on the chosen replies with that weight (sigmoid, ipo, hinge, simpo).
A step's pairs run in passes of method.pref_pairs_per_pass (by default on the CPU, as many as fit in
about a thousand tokens), each pass scoring its chosen and rejected replies in one forward; on the CPU
the reference scores all of a step's pairs in one forward before its passes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig
from transformers import Trainer, TrainerCallback
from trl import DPOConfig

from llmft.config.schema import pref_batch_splits_exactly
from llmft.data import build_dpo_datasets, build_pair_datasets
from llmft.model.loader import chat_tokenizer
from llmft.track.run_log import JsonlLogCallback
from llmft.train.arguments import batch_in_passes, common_training_arguments, resolved_per_pass
from llmft.train.components import trainable_model
from llmft.train.dpo_trainer import CachedPairsDPOTrainer
from llmft.train.fit import fit_and_save
from llmft.train.fused_head import score_labelled_positions_only_on_cpu

REFERENCE_FREE_LOSSES = ("orpo", "simpo")


def use_base_as_reference(trainer: Trainer) -> None:
    """TRL copies a PEFT model's adapter into a frozen "ref" adapter; a fresh adapter equals the base
    model, so drop the copy and let TRL compute reference log-probs with the adapter disabled."""
    model = trainer.accelerator.unwrap_model(trainer.model)
    if "ref" in getattr(model, "peft_config", {}):
        model.delete_adapter("ref")
        model.set_adapter("default")


def pairs_per_pass(cfg: DictConfig) -> int:
    """method.pref_pairs_per_pass, or by default, on the CPU, pairs in passes of about a thousand tokens
    (a pair is at most twice data.cutoff_len: one pair at the default 512); the whole batch on GPUs."""
    method = cfg.method
    pair_tokens = 2 * cfg.data.cutoff_len
    return resolved_per_pass(cfg, method.pref_pairs_per_pass, pref_batch_splits_exactly(method), pair_tokens)


def _dpo_trainer(
    cfg: DictConfig, run_dir: Path, model, tokenizer, datasets, callbacks
) -> CachedPairsDPOTrainer:
    method, (train_set, eval_set) = cfg.method, datasets
    losses, weights = [method.pref_loss], [1.0]
    if method.pref_ftx:
        losses, weights = [*losses, "sft"], [*weights, method.pref_ftx]
    args = DPOConfig(
        **{
            **common_training_arguments(cfg, run_dir, has_eval=eval_set is not None),
            **batch_in_passes(cfg.method, pairs_per_pass(cfg)),
        },
        max_length=cfg.data.cutoff_len,
        beta=method.pref_beta,
        loss_type=losses,
        loss_weights=weights,
        precompute_ref_log_probs=method.precompute_ref_log_probs,
        precompute_ref_batch_size=method.per_device_train_batch_size,  # no graph: passes would only be slower
    )
    trainer = CachedPairsDPOTrainer(
        model=model,
        ref_model=None,  # LoRA: the adapter-disabled base; otherwise TRL loads a frozen copy
        args=args,
        train_dataset=train_set,
        eval_dataset=eval_set,
        processing_class=tokenizer,
        callbacks=callbacks,
    )
    if cfg.model.adapter_path is None:  # a continued adapter keeps TRL's frozen copy of itself as reference
        use_base_as_reference(trainer)
    return trainer


def _reference_free_trainer(cfg: DictConfig, run_dir: Path, model, tokenizer, datasets, callbacks) -> Trainer:
    from trl.experimental.cpo import CPOConfig, CPOTrainer
    from trl.experimental.orpo import ORPOConfig, ORPOTrainer

    method, (train_set, eval_set) = cfg.method, datasets
    common = dict(
        **common_training_arguments(cfg, run_dir, has_eval=eval_set is not None),
        max_length=cfg.data.cutoff_len,
        beta=method.pref_beta,
        remove_unused_columns=False,  # their collator reads the tokenised columns the model does not take
    )
    if method.pref_loss == "orpo":  # beta weighs the odds-ratio term against the SFT loss on chosen replies
        trainer_class, args = ORPOTrainer, ORPOConfig(**common)
    else:  # beta scales the length-normalised reward; cpo_alpha is the SFT weight
        trainer_class = CPOTrainer
        args = CPOConfig(
            **common, loss_type="simpo", simpo_gamma=method.simpo_gamma, cpo_alpha=method.pref_ftx
        )
    return trainer_class(
        model=model,
        args=args,
        train_dataset=train_set,
        eval_dataset=eval_set,
        processing_class=tokenizer,
        callbacks=callbacks,
    )


def build_dpo_trainer(cfg: DictConfig, run_dir: Path, callbacks: Sequence[TrainerCallback] = ()) -> Trainer:
    score_labelled_positions_only_on_cpu()
    tokenizer = chat_tokenizer(cfg.model)  # prompt and replies are rendered with it
    if cfg.method.pref_loss in REFERENCE_FREE_LOSSES:  # TRL's ORPO and CPO tokenise conversation rows
        build, datasets = _reference_free_trainer, build_pair_datasets(cfg, tokenizer)
    else:
        build, datasets = _dpo_trainer, build_dpo_datasets(cfg, tokenizer)

    model = trainable_model(cfg, tokenizer)

    return build(cfg, run_dir, model, tokenizer, datasets, [JsonlLogCallback(run_dir), *callbacks])


def run_dpo(
    cfg: DictConfig, run_dir: Path, title: str, callbacks: Sequence[TrainerCallback] = ()
) -> dict[str, float]:
    trainer = build_dpo_trainer(cfg, run_dir, callbacks)
    return fit_and_save(trainer, run_dir, cfg.method.finetuning_type, title)
