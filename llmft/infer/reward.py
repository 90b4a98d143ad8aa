"""Reward models (a sequence-classification head with one output): score whole conversations."""

from __future__ import annotations

import threading
from typing import Any

import torch

from llmft.infer.engine import served_model_name
from llmft.model.loader import chat_tokenizer, resolve_device, resolve_dtype, resolve_model_path


class RewardScorer:
    """One score per conversation: the head's output at its last token. One request at a time."""

    def __init__(self, model: Any, tokenizer: Any, model_name: str):
        self.model, self.tokenizer, self.model_name = model, tokenizer, model_name
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, cfg: Any) -> RewardScorer:
        from transformers import AutoModelForSequenceClassification

        if cfg.quantization.method != "none":
            raise ValueError("reward models are served unquantized: use quantization=none with task=serve")
        tokenizer = chat_tokenizer(cfg.model)
        model = AutoModelForSequenceClassification.from_pretrained(
            resolve_model_path(cfg.model),
            num_labels=1,
            dtype=resolve_dtype(cfg.model, cfg.hardware),
            device_map=resolve_device(cfg.hardware),
            revision=cfg.model.revision,
            trust_remote_code=cfg.model.trust_remote_code,
        )
        model.config.pad_token_id = tokenizer.pad_token_id
        if cfg.model.adapter_path:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, cfg.model.adapter_path)
        return cls(model.eval(), tokenizer, served_model_name(cfg))

    def score(self, conversations: list[list[dict[str, str]]]) -> tuple[list[float], int]:
        """The scores, and the number of tokens read."""
        prompts = [
            self.tokenizer.apply_chat_template(
                c, tokenize=True, return_dict=False, sanitize_control_tokens=True
            )
            for c in conversations
        ]
        scores = []
        with self._lock, torch.inference_mode():
            for ids in prompts:  # one at a time: no padding to get wrong
                logits = self.model(input_ids=torch.tensor([ids], device=self.model.device)).logits
                scores.append(float(logits[0, 0]))
        return scores, sum(len(ids) for ids in prompts)
