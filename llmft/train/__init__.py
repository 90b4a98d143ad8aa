"""Training: one recipe per stage, a shared start (seed, env.json) and end (summary, objective)."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig
from transformers import set_seed

from llmft.launch.callbacks import launch_callbacks
from llmft.model.memory import memory_report
from llmft.track.environment import write_environment
from llmft.track.run_log import loss_series, read_log
from llmft.track.tracking import is_main_process, tracked_run
from llmft.train.dpo import run_dpo
from llmft.train.grpo import run_group_rl
from llmft.train.kto import run_kto
from llmft.train.ppo import run_ppo
from llmft.train.pt import run_pt
from llmft.train.rm import run_rm
from llmft.train.sft import run_sft

log = logging.getLogger(__name__)
STAGES = {
    "sft": run_sft,
    "pt": run_pt,
    "rm": run_rm,
    "dpo": run_dpo,
    "kto": run_kto,
    "ppo": run_ppo,
    "grpo": run_group_rl,
    "rloo": run_group_rl,
}


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
        metrics = STAGES[cfg.method.stage](cfg, run_dir, run_title(cfg), callbacks)
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
