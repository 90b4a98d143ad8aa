"""The run directory's layout: every file and folder name a run leaves, and where a killed run resumes.

One owner for the names the README's "What a run leaves behind" table promises; every layer may read
them (this module imports nothing heavy).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

log = logging.getLogger(__name__)

HYDRA_DIR = ".hydra"  # Hydra's record: config.yaml, hydra.yaml, overrides.yaml
ADAPTER_DIR = "adapter"  # a LoRA run's result
MODEL_DIR = "model"  # a freeze or full run's result
RESULT_DIRS = (ADAPTER_DIR, MODEL_DIR)
CHECKPOINT_DIR = "checkpoints"  # checkpoint-<step>/ every method.save_steps
# transformers writes trainer_state.json last: a checkpoint without it was cut off mid-save.
COMPLETE_MARKER = "trainer_state.json"
LOG_FILE = "trainer_log.jsonl"  # one JSON object per logging step
METRICS_FILE = "metrics.json"  # the final figures
PLOT_FILE = "loss.png"
ENV_FILE = "env.json"  # package versions, git commit, hardware
MLFLOW_RUN_FILE = "mlflow_run.json"  # which MLflow run records this dir (a resumed run reopens it)
REPLICAS_FILE = "replicas.json"  # DDP: each rank's step count and weight digest at the end
OBJECTIVE_FILE = "objective.json"  # rank 0's return value, for the launching process to hand to sweepers
TENSORBOARD_DIR = "tensorboard"  # logger=tensorboard
SWANLAB_DIR = "swanlog"  # logger=swanlab, offline
PREDICTIONS_FILE = "generated_predictions.jsonl"  # task=predict
BENCHMARK_PREDICTIONS_FILE = "benchmark_predictions.jsonl"  # task=eval
LM_EVAL_RESULTS_FILE = "lm_eval_results.json"  # task=eval task.benchmark=lm_eval
JOB_FILE = "job_status.json"  # a sweep job's outcome (llmft.track.jobs)


def result_dir(run_dir: Path, finetuning_type: str) -> Path:
    """run_dir/adapter for LoRA, run_dir/model for freeze and full (the validated method.finetuning_type)."""
    return Path(run_dir) / (ADAPTER_DIR if finetuning_type == "lora" else MODEL_DIR)


def trained_result(run_dir: Path) -> Path | None:
    """What a finished training run left: its adapter/ or model/ directory, or None."""
    return next((Path(run_dir) / name for name in RESULT_DIRS if (Path(run_dir) / name).is_dir()), None)


def checkpoint_step(checkpoint: str | Path) -> int:
    """The step a `checkpoint-<step>` directory was saved at."""
    return int(Path(checkpoint).name.rsplit("-", 1)[1])


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / f"checkpoint-{step}"


def last_checkpoint(run_dir: Path) -> str | None:
    """The newest complete `checkpoint-<step>` under run_dir/checkpoints, or None for a fresh start.

    A run killed while saving leaves a partial checkpoint behind; it is skipped (with a warning)
    in favour of the previous complete one.
    """
    directory = Path(run_dir) / CHECKPOINT_DIR
    if not directory.is_dir():
        return None
    steps = sorted(
        (int(match.group(1)), path)
        for path in directory.iterdir()
        if path.is_dir() and (match := re.fullmatch(r"checkpoint-(\d+)", path.name))
    )
    for _, path in reversed(steps):
        if (path / COMPLETE_MARKER).exists():
            log.info("Resuming from %s", path)
            return str(path)
        log.warning("Skipping %s: it was cut off while saving (no %s)", path, COMPLETE_MARKER)
    return None
