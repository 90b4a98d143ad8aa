"""Which trackers transformers' Trainer reports to, and where they write.

MLflow is not among them: llmft.track.tracking records it with MLflow's own client (see there why).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from omegaconf import DictConfig

TENSORBOARD_DIR = "tensorboard"


def require_tracker_packages(logger: DictConfig) -> None:
    """Fail at the start of a run, before data and model load, when a selected tracker is not installed."""
    if logger.wandb and importlib.util.find_spec("wandb") is None:
        raise RuntimeError(
            "logger=wandb needs the wandb package: pip install wandb (or pip install -e .[wandb])."
        )


def report_to(logger: DictConfig, run_dir: Path) -> list[str]:
    """The Trainer's `report_to` list for the selected logger presets (empty for logger=none)."""
    targets = []
    if logger.tensorboard:
        # transformers 5 dropped TrainingArguments.logging_dir; the callback reads this variable instead
        os.environ["TENSORBOARD_LOGGING_DIR"] = str(Path(run_dir) / TENSORBOARD_DIR)
        targets.append("tensorboard")
    if logger.wandb:
        # transformers' WandbCallback and wandb itself read these; offline mode needs no API key
        os.environ["WANDB_PROJECT"] = logger.wandb_project
        os.environ["WANDB_MODE"] = logger.wandb_mode
        os.environ["WANDB_DIR"] = str(Path(run_dir).resolve())
        targets.append("wandb")
    return targets
