"""A rerun of the same command in the same run dir continues from the last complete checkpoint."""

from __future__ import annotations

import logging
import re
from pathlib import Path

log = logging.getLogger(__name__)
CHECKPOINT_DIR = "checkpoints"
# transformers writes trainer_state.json last: a checkpoint without it was cut off mid-save.
COMPLETE_MARKER = "trainer_state.json"


def checkpoint_step(checkpoint: str | Path) -> int:
    """The step a `checkpoint-<step>` directory was saved at."""
    return int(Path(checkpoint).name.rsplit("-", 1)[1])


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
