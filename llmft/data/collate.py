"""Batches for causal-LM training: padding-free (the default) or padded.

Padding-free: a batch's samples (or packed rows) are concatenated into one row, with position_ids that
restart at each sample and the boundaries as cu_seq_lens, so no pad token is ever computed and the
attention (llmft.model.attention, or flash-attention varlen) keeps every sample to itself. The first
label of each sample is masked: in the concatenated row, the previous sample's last token would
otherwise be trained to predict it, which the same sample alone never is. The loss is therefore the
loss of the padded batch.

Both collators can also ask the model for logits only where the loss reads them (`trained_logits_only`):
the positions whose next token is trained, as a boolean `logits_to_keep` with the matching targets as
`shift_labels` (transformers' causal-LM loss takes both). A chat sample's prompt tokens then skip the
LM head and its softmax, about a tenth of a small model's work per token; the loss is unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from llmft.data.tokenize import IGNORE_INDEX


def keep_trained_logits(batch: dict[str, Any]) -> dict[str, Any]:
    """Adds `logits_to_keep` (the positions whose next token is trained) and their targets."""
    targets = F.pad(batch["labels"], (0, 1), value=IGNORE_INDEX)[:, 1:]
    trained = targets != IGNORE_INDEX
    return {**batch, "logits_to_keep": trained, "shift_labels": targets[trained]}


def _sample_lengths(example: dict[str, Any]) -> list[int]:
    return list(example.get("seq_lengths") or [len(example["input_ids"])])


@dataclass
class PaddingFreeCollator:
    trained_logits_only: bool = False

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        lengths = [length for example in examples for length in _sample_lengths(example)]
        input_ids = torch.tensor([token for example in examples for token in example["input_ids"]])
        labels = torch.tensor([label for example in examples for label in example["labels"]])
        position_ids = torch.cat([torch.arange(length) for length in lengths])
        labels[position_ids == 0] = IGNORE_INDEX
        cu_seq_lens = torch.tensor([0, *lengths], dtype=torch.int32).cumsum(0, dtype=torch.int32)
        batch = {
            "input_ids": input_ids[None],
            "labels": labels[None],
            "position_ids": position_ids[None],
            "cu_seq_lens_q": cu_seq_lens,
            "cu_seq_lens_k": cu_seq_lens,
            "max_length_q": max(lengths),
            "max_length_k": max(lengths),
        }
        return keep_trained_logits(batch) if self.trained_logits_only else batch


@dataclass
class PaddedCollator:
    """Right-padded rows with an attention mask (data.padding_free=false). Only for unpacked samples: a
    padded packed row would let its samples attend to each other (llmft.train.sft.batch_collator)."""

    pad_token_id: int
    trained_logits_only: bool = False

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        width = max(len(example["input_ids"]) for example in examples)
        batch = {
            "input_ids": torch.full((len(examples), width), self.pad_token_id),
            "labels": torch.full((len(examples), width), IGNORE_INDEX),
            "attention_mask": torch.zeros((len(examples), width), dtype=torch.long),
        }
        for row, example in enumerate(examples):
            length = len(example["input_ids"])
            batch["input_ids"][row, :length] = torch.tensor(example["input_ids"])
            batch["labels"][row, :length] = torch.tensor(example["labels"])
            batch["attention_mask"][row, :length] = 1
        return keep_trained_logits(batch) if self.trained_logits_only else batch
