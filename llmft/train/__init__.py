"""Training: one recipe per stage, a shared start (seed, env.json) and end (summary, objective)."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig
from transformers import set_seed

from llmft.config.imports import import_entry_point
from llmft.model.memory import memory_report
from llmft.track.environment import write_environment
from llmft.track.ranks import is_main_process
from llmft.track.run_files import loss_series, read_log
from llmft.track.tracking import tracked_run
from llmft.train.callbacks import launch_callbacks

log = logging.getLogger(__name__)
# The recipe of each stage, imported when chosen: an SFT run never pays for TRL (and what TRL imports).
STAGES = {
    "sft": "llmft.train.sft:run_sft",
    "pt": "llmft.train.pt:run_pt",
    "rm": "llmft.train.rm:run_rm",
    "dpo": "llmft.train.dpo:run_dpo",
    "kto": "llmft.train.kto:run_kto",
    "ppo": "llmft.train.ppo:run_ppo",
    "grpo": "llmft.train.grpo:run_group_rl",
    "rloo": "llmft.train.grpo:run_group_rl",
}


def stage_recipe(stage: str):
    return import_entry_point(STAGES[stage])


def run_title(cfg: DictConfig) -> str:
    model = Path(cfg.model.name_or_path).name
    return f"{model} {cfg.method.finetuning_type}-{cfg.method.stage} on {'+'.join(cfg.dataset)}"


def train(cfg: DictConfig, run_dir: Path) -> float | None:
    """Train per cfg.method.stage in run_dir; return the objective for sweepers."""
    set_seed(cfg.seed)
    if is_main_process():
        print(memory_report(cfg), flush=True)  # before the expensive part: will it fit?
    environment = write_environment(run_dir) if is_main_process() else None  # rank 0 writes the run's files
    with tracked_run(cfg, run_dir, environment) as callbacks:  # MLflow: FINISHED, or FAILED with the error
        callbacks = [*callbacks, *launch_callbacks(cfg, run_dir)]  # preemption checkpoints, DDP replica check
        metrics = stage_recipe(cfg.method.stage)(cfg, run_dir, run_title(cfg), callbacks)
    if is_main_process():
        print(summary(run_dir, metrics), flush=True)
    return objective(metrics, cfg.task.objective)


def objective(metrics: dict[str, float], name: str) -> float | None:
    if name in metrics:
        return float(metrics[name])
    log.info(
        "Objective %r was not measured (set data.val_size for an eval split); returning train_loss.", name
    )
    return metrics.get("train_loss")


def summary(run_dir: Path, metrics: dict[str, float]) -> str:
    _, losses = loss_series(read_log(run_dir))
    lines = [f"Run directory: {Path(run_dir).resolve()}"]
    if losses:
        lines.append(f"Loss: {losses[0]:.4f} (first logged) -> {losses[-1]:.4f} (last logged)")
    if "eval_loss" in metrics:
        lines.append(f"Eval loss: {metrics['eval_loss']:.4f}")
    if metrics.get("train_tokens_per_second"):  # grpo/rloo do not count tokens
        lines.append(
            f"Throughput: {metrics['train_tokens_per_second']:,.0f} tokens/s over {metrics['train_runtime']:.1f} s"
        )
    return "\n".join(lines)
