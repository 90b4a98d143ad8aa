"""Reward models (a sequence-classification head with one output): score whole conversations."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import torch

from llmft.infer.engine import served_model_name
from llmft.model.loader import resolve_device, resolve_dtype, resolve_model_path
from llmft.train.components import chat_tokenizer


def is_reward_model(model_cfg: Any) -> bool:
    """A LoRA adapter trained for sequence classification, or a local checkpoint with such a head."""
    adapter_config = Path(model_cfg.adapter_path or "") / "adapter_config.json"
    if model_cfg.adapter_path and adapter_config.is_file():
        return json.loads(adapter_config.read_text(encoding="utf-8")).get("task_type") == "SEQ_CLS"
    config = Path(resolve_model_path(model_cfg)) / "config.json"
    if not config.is_file():
        return False
    architectures = json.loads(config.read_text(encoding="utf-8")).get("architectures") or []
    return any(name.endswith("ForSequenceClassification") for name in architectures)


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
