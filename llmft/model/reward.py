"""Reward models (a sequence-classification head with one output): loaded like any model, and scoring
whole conversations. task=serve's /v1/score and online RL's method.reward_model share this scorer."""

from __future__ import annotations

import threading
from typing import Any

from omegaconf import DictConfig, OmegaConf

from llmft.config.schema import ModelConfig
from llmft.model.directories import adapter_base, reward_model_dir
from llmft.model.loader import chat_tokenizer, load_model


class RewardScorer:
    """One score per conversation: the head's output at its last token. One conversation at a time (no
    padding to get wrong), one caller at a time."""

    def __init__(self, model: Any, tokenizer: Any, model_name: str = "") -> None:
        self.model, self.tokenizer, self.model_name = model, tokenizer, model_name
        self._lock = threading.Lock()

    @classmethod
    def load(cls, cfg: DictConfig, model_name: str = "") -> RewardScorer:
        """The reward model of the composed config (cfg.model, its adapter included), for inference."""
        tokenizer = chat_tokenizer(cfg.model)
        model = load_model(cfg, tokenizer, for_training=False, head="sequence_classification")
        return cls(model, tokenizer, model_name)

    def score(self, conversations: list[list[dict[str, str]]]) -> tuple[list[float], int]:
        """The scores, and the number of tokens read. Control tokens typed inside messages stay text."""
        import torch

        prompts = [
            self.tokenizer.apply_chat_template(
                conversation, tokenize=True, return_dict=False, sanitize_control_tokens=True
            )
            for conversation in conversations
        ]
        scores = []
        with self._lock, torch.inference_mode():
            for ids in prompts:
                logits = self.model(input_ids=torch.tensor([ids], device=self.model.device)).logits
                scores.append(float(logits[0, 0]))
        return scores, sum(len(ids) for ids in prompts)


def reward_model_config(path: str, dtype: str = "auto") -> DictConfig:
    """The model config that loads method.reward_model: an rm run dir (its adapter/ on the base model it
    names, or its model/) or a reward model directory."""
    directory = reward_model_dir(path)
    base = adapter_base(directory)
    return OmegaConf.structured(
        ModelConfig(
            name_or_path=base or str(directory), adapter_path=str(directory) if base else None, dtype=dtype
        )
    )
