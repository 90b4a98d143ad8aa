"""Which trackers transformers' Trainer reports to, and where they write."""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import DictConfig

TENSORBOARD_DIR = "tensorboard"


def report_to(logger: DictConfig, run_dir: Path) -> list[str]:
    """The Trainer's `report_to` list for the selected logger presets (empty for logger=none)."""
    targets = []
    if logger.tensorboard:
        # transformers 5 dropped TrainingArguments.logging_dir; the callback reads this variable instead
        os.environ["TENSORBOARD_LOGGING_DIR"] = str(Path(run_dir) / TENSORBOARD_DIR)
        targets.append("tensorboard")
    return targets
