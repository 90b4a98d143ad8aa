"""trainer_log.jsonl: one JSON object per logging step, written by the main process only."""

from __future__ import annotations

import json
import math
from pathlib import Path

from transformers import TrainerCallback

LOG_FILE = "trainer_log.jsonl"


class JsonlLogCallback(TrainerCallback):
    """Appends every Trainer log (training and eval) with its step, so a resumed run continues the file."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOG_FILE

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        record = {"step": state.global_step, "epoch": state.epoch}
        record.update({k: v for k, v in logs.items() if _is_number(v)})
        with self.path.open("a") as stream:
            stream.write(json.dumps(record) + "\n")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not (isinstance(value, float) and math.isnan(value))


def read_log(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / LOG_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def loss_series(records: list[dict], key: str = "loss") -> tuple[list[int], list[float]]:
    """(steps, values) of one logged metric; a resumed run's repeated steps keep the latest value."""
    by_step = {r["step"]: r[key] for r in records if key in r}
    steps = sorted(by_step)
    return steps, [by_step[s] for s in steps]
