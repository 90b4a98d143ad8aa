"""Reading a run dir's records (trainer_log.jsonl, metrics.json) without importing transformers.

Sweep summaries and `compare` read these in the Hydra process, which must stay light.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from llmft.config.run_dir import LOG_FILE, METRICS_FILE


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not (isinstance(value, float) and math.isnan(value))


def read_metrics(run_dir: Path) -> dict[str, float]:
    path = Path(run_dir) / METRICS_FILE
    return json.loads(path.read_text()) if path.exists() else {}


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
