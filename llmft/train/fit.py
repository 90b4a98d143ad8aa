"""The end every stage shares: train (resuming when a checkpoint exists), evaluate, save, record."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from transformers import Trainer

from llmft.launch.resume import checkpoint_step, last_checkpoint
from llmft.model.lora_variants import loraplus_optimizer_spec
from llmft.model.save import result_dir, save_trained
from llmft.track.plots import plot_loss
from llmft.track.run_files import METRICS_FILE
from llmft.track.run_log import forget_after

log = logging.getLogger(__name__)


def fit_and_save(trainer: Trainer, run_dir: Path, finetuning_type: str, title: str) -> dict[str, float]:
    """Run the trainer to the end, save the result per the run-dir contract and return the final metrics."""
    # LoRA+ (method.loraplus_lr_ratio): B matrices get their own, larger learning rate
    if (loraplus := loraplus_optimizer_spec(trainer.model, trainer.args)) is not None:
        trainer.optimizer_cls_and_kwargs = loraplus
    checkpoint = last_checkpoint(run_dir)
    if checkpoint is not None and trainer.is_world_process_zero():
        forget_after(run_dir, checkpoint_step(checkpoint))
    result = trainer.train(resume_from_checkpoint=checkpoint)
    metrics = dict(result.metrics)
    if trainer.eval_dataset is not None:
        metrics.update(trainer.evaluate())
    metrics.update(_token_throughput(trainer, metrics))
    if torch.cuda.is_available():
        metrics["peak_gpu_memory_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    _save_result(trainer, run_dir, finetuning_type)
    if trainer.is_world_process_zero():
        Path(run_dir, METRICS_FILE).write_text(json.dumps(metrics, indent=2))
        plot_loss(run_dir, title)
    return metrics


def _save_result(trainer: Trainer, run_dir: Path, finetuning_type: str) -> None:
    if trainer.is_fsdp_enabled or trainer.is_deepspeed_enabled:
        # Sharded weights: every rank takes part in gathering them, and the Trainer writes from rank 0.
        out_dir = result_dir(run_dir, finetuning_type)
        trainer.save_model(str(out_dir))
        if trainer.is_world_process_zero():
            trainer.processing_class.save_pretrained(out_dir)
    elif trainer.is_world_process_zero():
        save_trained(trainer.model, trainer.processing_class, run_dir, finetuning_type)


def _token_throughput(trainer: Trainer, metrics: dict) -> dict[str, float]:
    """Tokens seen (without padding) per second of this session's training."""
    tokens = trainer.state.num_input_tokens_seen
    runtime = metrics.get("train_runtime") or 0
    return {"train_tokens": tokens, "train_tokens_per_second": round(tokens / runtime, 1) if runtime else 0.0}
