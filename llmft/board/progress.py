"""How far a run is: step of total, ETA, loss curves (trainer_log.jsonl) and the tail of its output."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from llmft.config.run_dir import HYDRA_DIR
from llmft.track.run_files import loss_series, read_log

CONFIG_RECORD = Path(HYDRA_DIR) / "config.yaml"
CURVES = ("loss", "eval_loss")


@dataclass
class Progress:
    step: int
    total: int | None  # None until the run's length is known (epochs: after the first log)
    eta_s: float | None

    @property
    def fraction(self) -> float:
        return min(self.step / self.total, 1.0) if self.total else 0.0

    def describe(self) -> str:
        if self.total is None:
            return f"step {self.step}"
        eta = f", about {format_duration(self.eta_s)} left" if self.eta_s is not None else ""
        return f"step {self.step} / {self.total} ({self.fraction:.0%}{eta})"


def format_duration(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


def total_steps(run_dir: Path, records: list[dict]) -> int | None:
    """method.max_steps when set, else the step count the epochs make (from the last logged epoch)."""
    path = Path(run_dir) / CONFIG_RECORD
    if not path.exists():
        return None
    method = OmegaConf.load(path).method
    if method.max_steps and method.max_steps > 0:
        return int(method.max_steps)
    last = next((r for r in reversed(records) if r.get("epoch") and r.get("step")), None)
    return round(last["step"] * method.num_train_epochs / last["epoch"]) if last else None


class Pace:
    """Seconds per step as the board sees the steps go by, from the first step it saw: start-up time
    (imports, data, model loading) and a board restart do not distort the ETA."""

    def __init__(self) -> None:
        self.first_seen: dict[Path, tuple[float, int]] = {}

    def eta(self, run_dir: Path, step: int, total: int | None, now: float) -> float | None:
        then, step_then = self.first_seen.setdefault(Path(run_dir), (now, step))
        if not total or step <= step_then:
            return None
        return (now - then) * (total - step) / (step - step_then)


def progress(run_dir: Path, pace: Pace, now: float | None = None) -> Progress:
    records = read_log(run_dir)
    step = max((r["step"] for r in records if "step" in r), default=0)
    total = total_steps(run_dir, records)
    return Progress(step, total, pace.eta(run_dir, step, total, now or time.time()))


def curves(run_dir: Path, label: str | None = None) -> list[dict]:
    """Rows {step, value, curve} of the train and eval loss, for a line plot."""
    records = read_log(run_dir)
    rows = []
    for key in CURVES:
        steps, values = loss_series(records, key)
        name = f"{label} {key}" if label else key
        rows += [{"step": s, "value": v, "curve": name} for s, v in zip(steps, values, strict=True)]
    return rows


def log_tail(path: Path, lines: int = 40, max_bytes: int = 64_000) -> str:
    """The last lines of a run's output; progress bars' carriage-return redraws count as lines."""
    if not Path(path).exists():
        return ""
    with open(path, "rb") as stream:
        stream.seek(max(0, Path(path).stat().st_size - max_bytes))
        text = stream.read().decode(errors="replace")
    return "\n".join([line for line in re.split(r"[\r\n]+", text) if line.strip()][-lines:])
