"""The end every stage shares: train (resuming when a checkpoint exists), evaluate, save, record.

PPO runs its own loop (llmft.train.ppo) but resumes and records its result through the same functions.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from transformers import Trainer

from llmft.config.run_dir import METRICS_FILE, checkpoint_step, last_checkpoint, result_dir
from llmft.model.lora_variants import loraplus_optimizer_spec
from llmft.model.save import save_trained
from llmft.track.plots import plot_loss
from llmft.track.run_log import forget_after

log = logging.getLogger(__name__)


def fit_and_save(trainer: Trainer, run_dir: Path, finetuning_type: str, title: str) -> dict[str, float]:
    """Run the trainer to the end, save the result per the run-dir contract and return the final metrics."""
    # LoRA+ (method.loraplus_lr_ratio): B matrices get their own, larger learning rate
    if (loraplus := loraplus_optimizer_spec(trainer.model, trainer.args)) is not None:
        trainer.optimizer_cls_and_kwargs = loraplus
    checkpoint = resume_checkpoint(run_dir, writes_log=trainer.is_world_process_zero())
    result = trainer.train(resume_from_checkpoint=checkpoint)
    metrics = dict(result.metrics)
    if trainer.eval_dataset is not None:
        metrics.update(trainer.evaluate())
    metrics.update(_token_throughput(trainer, metrics))
    _save_result(trainer, run_dir, finetuning_type)
    return record_metrics(run_dir, metrics, title, writes=trainer.is_world_process_zero())


def resume_checkpoint(run_dir: Path, writes_log: bool = True) -> str | None:
    """The last complete checkpoint to resume from, or None for a fresh start. The log records past it
    are dropped: the resumed run logs those steps again."""
    checkpoint = last_checkpoint(run_dir)
    if checkpoint is not None and writes_log:
        forget_after(run_dir, checkpoint_step(checkpoint))
    return checkpoint


def record_metrics(
    run_dir: Path, metrics: dict[str, float], title: str, writes: bool = True
) -> dict[str, float]:
    """The final figures, with the peak GPU memory, in metrics.json, and the loss curve in loss.png."""
    if torch.cuda.is_available():
        metrics["peak_gpu_memory_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    if writes:
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
