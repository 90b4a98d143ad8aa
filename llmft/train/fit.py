"""The end every stage shares: train (resuming when a checkpoint exists), evaluate, save, record."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from transformers import Trainer

from llmft.launch.resume import last_checkpoint
from llmft.model.save import save_trained
from llmft.track.plots import plot_loss

log = logging.getLogger(__name__)
METRICS_FILE = "metrics.json"


def fit_and_save(trainer: Trainer, run_dir: Path, finetuning_type: str, title: str) -> dict[str, float]:
    """Run the trainer to the end, save the result per the run-dir contract and return the final metrics."""
    result = trainer.train(resume_from_checkpoint=last_checkpoint(run_dir))
    metrics = dict(result.metrics)
    if trainer.eval_dataset is not None:
        metrics.update(trainer.evaluate())
    metrics.update(_token_throughput(trainer, metrics))
    if trainer.is_world_process_zero():
        save_trained(trainer.model, trainer.processing_class, run_dir, finetuning_type)
        Path(run_dir, METRICS_FILE).write_text(json.dumps(metrics, indent=2))
        plot_loss(run_dir, title)
    return metrics


def _token_throughput(trainer: Trainer, metrics: dict) -> dict[str, float]:
    """Tokens seen (without padding) per second of this session's training."""
    tokens = trainer.state.num_input_tokens_seen
    runtime = metrics.get("train_runtime") or 0
    return {"train_tokens": tokens, "train_tokens_per_second": round(tokens / runtime, 1) if runtime else 0.0}
