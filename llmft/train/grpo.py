"""GRPO and RLOO: TRL's trainers, on prompts from any conversational dataset, with the rewards of
method.reward_funcs and/or method.reward_model.

Both sample method.num_generations replies per prompt and use the group's rewards as the baseline
(GRPO: the group mean and std; RLOO: the mean of the other replies), so no value model is trained.
With LoRA the KL reference is the model with its adapter disabled (TRL does that for a PeftModel).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig
from transformers import TrainerCallback
from trl import GRPOConfig, GRPOTrainer, RLOOConfig, RLOOTrainer

from llmft.data.prompts import build_prompt_dataset
from llmft.model.loader import chat_tokenizer
from llmft.track.run_log import JsonlLogCallback
from llmft.train.arguments import common_training_arguments
from llmft.train.components import trainable_model
from llmft.train.fit import fit_and_save
from llmft.train.fused_head import score_labelled_positions_only_on_cpu
from llmft.train.rewards import build_rewards

TRAINERS = {"grpo": (GRPOConfig, GRPOTrainer), "rloo": (RLOOConfig, RLOOTrainer)}


def run_group_rl(
    cfg: DictConfig, run_dir: Path, title: str, callbacks: Sequence[TrainerCallback] = ()
) -> dict[str, float]:
    method = cfg.method
    score_labelled_positions_only_on_cpu()
    tokenizer = chat_tokenizer(cfg.model)
    prompts = build_prompt_dataset(cfg, tokenizer)
    rewards = build_rewards(cfg)

    model = trainable_model(cfg, tokenizer)

    config_class, trainer_class = TRAINERS[method.stage]
    args = config_class(
        **{
            **common_training_arguments(cfg, run_dir, has_eval=False),
            # TRL counts prompt + sampled tokens itself; the Trainer's counter finds no input_ids and warns
            "include_num_input_tokens_seen": "no",
        },
        num_generations=method.num_generations,
        max_completion_length=method.max_completion_length,
        temperature=method.temperature,
        beta=method.kl_coef,
        epsilon=method.cliprange,
        num_iterations=method.ppo_epochs,
    )
    trainer = trainer_class(
        model=model,
        reward_funcs=rewards,
        args=args,
        train_dataset=prompts,
        processing_class=tokenizer,
        callbacks=[JsonlLogCallback(run_dir), *callbacks],
    )
    return fit_and_save(trainer, run_dir, method.finetuning_type, title)
