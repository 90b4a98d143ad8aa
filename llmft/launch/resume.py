"""A rerun of the same command in the same run dir continues from the last checkpoint."""

from __future__ import annotations

import logging
from pathlib import Path

from transformers.trainer_utils import get_last_checkpoint

log = logging.getLogger(__name__)
CHECKPOINT_DIR = "checkpoints"


def last_checkpoint(run_dir: Path) -> str | None:
    """The newest `checkpoint-<step>` under run_dir/checkpoints, or None for a fresh start."""
    directory = Path(run_dir) / CHECKPOINT_DIR
    if not directory.is_dir():
        return None
    checkpoint = get_last_checkpoint(str(directory))
    if checkpoint:
        log.info("Resuming from %s", checkpoint)
    return checkpoint
