"""Which trackers transformers' Trainer reports to, and where they write.

MLflow is not among them: llmft.track.tracking records it with MLflow's own client (see there why).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from omegaconf import DictConfig

from llmft.config.run_dir import TENSORBOARD_DIR

# trackers that are a package of their own; each is also an extra of llmft (pip install -e .[name])
TRACKER_PACKAGES = ("wandb", "swanlab")


def require_tracker_packages(logger: DictConfig) -> None:
    """Fail at the start of a run, before data and model load, when a selected tracker is not installed."""
    for tracker in TRACKER_PACKAGES:
        if logger[tracker] and importlib.util.find_spec(tracker) is None:
            raise RuntimeError(
                f"logger={tracker} needs the {tracker} package: pip install {tracker} "
                f"(or pip install -e .[{tracker}])."
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
    if (
        logger.swanlab
    ):  # its run is opened (offline by default) by llmft.track.tracking; transformers logs into it
        targets.append("swanlab")
    return targets
