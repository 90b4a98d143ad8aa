"""trainer_log.jsonl: one JSON object per logging step, written by the main process only.

The readers live in llmft.track.run_files (no transformers import).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from transformers import TrainerCallback

from llmft.config.run_dir import LOG_FILE
from llmft.track.run_files import is_number, read_log


class JsonlLogCallback(TrainerCallback):
    """Appends every Trainer log (training and eval) with its step, so a resumed run continues the file."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOG_FILE

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        append_log(self.path.parent, state.global_step, {"epoch": state.epoch, **logs})


def append_log(run_dir: Path, step: int, values: dict) -> None:
    """One trainer_log.jsonl record: the step, the numeric values and the wall-clock time it was written
    (for progress and start-up figures; also for loops without a Trainer, e.g. ppo)."""
    record = {
        "step": step,
        **{k: v for k, v in values.items() if is_number(v)},
        "time": round(time.time(), 3),
    }
    with (Path(run_dir) / LOG_FILE).open("a") as stream:
        stream.write(json.dumps(record) + "\n")


def forget_after(run_dir: Path, step: int) -> None:
    """Drop the records past `step`: a run resumed from the checkpoint at `step` logs those steps again,
    and what the interrupted session logged after its last checkpoint is not part of the result."""
    path = Path(run_dir) / LOG_FILE
    kept = [record for record in read_log(run_dir) if record["step"] <= step]
    if path.exists():
        path.write_text("".join(json.dumps(record) + "\n" for record in kept))
