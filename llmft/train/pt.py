"""(Continued) pre-training: next-token loss on every token of plain text, packed, on the SFT trainer.

The same pipeline as SFT: text rows become bos + text + eos with every token trained
(llmft.data.tokenize.encode_text), and the pt presets switch packing on (method.packing).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig
from transformers import Trainer, TrainerCallback

from llmft.train.fit import fit_and_save
from llmft.train.sft import build_sft_trainer


class PretrainingTrainer(Trainer):
    """Adds eval_perplexity = exp(eval_loss) to every evaluation (logged, and returned by evaluate())."""

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        if "eval_loss" in logs:
            logs["eval_perplexity"] = math.exp(min(logs["eval_loss"], 50.0))  # exp(50): already meaningless
        super().log(logs, *args, **kwargs)


def run_pt(
    cfg: DictConfig, run_dir: Path, title: str, callbacks: Sequence[TrainerCallback] = ()
) -> dict[str, float]:
    trainer = build_sft_trainer(cfg, run_dir, callbacks, trainer_class=PretrainingTrainer)
    return fit_and_save(trainer, run_dir, cfg.method.finetuning_type, title)
