"""Runs the board starts: their own processes, found again from their run dirs, stopped one at a time.

A run is `python run.py ...` in its own session (closing the board does not end it), with its output in
<run dir>/console.log and how it was started in <run dir>/board.json. Only the board reads these files.
A process is identified by its pid *and* its start time, so Stop never signals a process that merely
reuses the pid of a run that ended.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from llmft.config.run_dir import CHECKPOINT_DIR, COMPLETE_MARKER, HYDRA_DIR, METRICS_FILE

RECORD_FILE = "board.json"
CONSOLE_FILE = "console.log"
STOP_SIGNAL = signal.SIGUSR2  # llmft.train.preemption: checkpoint at the end of this step, then stop
STOPPED_EXIT_CODE = 130  # run.py's exit code after a stop (or Ctrl-C)
RUN_ROOTS = ("outputs", "multirun")
# <root>/<date>/<time>/ (training), <run dir>/<task>/<date>/<time>/ (eval, predict, export on a run)
RECORD_PATTERNS = (f"*/*/{RECORD_FILE}", f"*/*/*/*/*/{RECORD_FILE}")


class BoardError(ValueError):
    """An action the board refuses, with the reason (shown in the page)."""


@dataclass
class BoardRun:
    run_dir: Path
    argv: list[str]
    kind: str  # train | chat | eval | predict | export
    pid: int
    started: float  # time.time() at start
    process_start: str | None  # the process's start time in clock ticks since boot (/proc/<pid>/stat)
    slurm: bool = False  # the process submits to Slurm and waits; the job runs elsewhere
    returncode: int | None = None  # set when the board saw it end

    def save(self) -> None:
        record = {**dataclasses.asdict(self), "run_dir": str(self.run_dir)}
        (self.run_dir / RECORD_FILE).write_text(json.dumps(record, indent=2))

    @classmethod
    def load(cls, run_dir: Path) -> BoardRun:
        record = json.loads((Path(run_dir) / RECORD_FILE).read_text())
        return cls(**{**record, "run_dir": Path(record["run_dir"])})

    @property
    def job_dir(self) -> Path:
        """Where the run's files appear: the run dir, or job 0 of the sweep dir a Slurm submission makes."""
        return self.run_dir / "0" if self.slurm else self.run_dir

    @property
    def running(self) -> bool:
        return self.returncode is None and process_start_time(self.pid) == self.process_start

    @property
    def status(self) -> str:
        """RUNNING | FINISHED | STOPPED (resumable from a checkpoint) | FAILED | ENDED."""
        if self.running:
            return "RUNNING"
        if self.returncode == 0 or (self.job_dir / METRICS_FILE).exists():
            return "FINISHED"
        if self.kind == "train" and any(
            (self.job_dir / CHECKPOINT_DIR).glob(f"checkpoint-*/{COMPLETE_MARKER}")
        ):
            return "STOPPED"
        return "FAILED" if self.returncode not in (None, STOPPED_EXIT_CODE) else "ENDED"


def process_start_time(pid: int) -> str | None:
    """When process pid started (field 22 of /proc/<pid>/stat), or None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # fields after the command name, which may hold spaces


def new_run_dir(root: Path, kind: str = "train") -> Path:
    """outputs/<date>/<time> as Hydra names it (multirun/... for Slurm); a suffix when that second is taken."""
    base = Path(root) / datetime.now().strftime("%Y-%m-%d/%H-%M-%S")
    candidate, n = base, 1
    while candidate.exists():
        candidate, n = base.with_name(f"{base.name}-{n}"), n + 1
    return candidate


def start(
    argv: list[str], run_dir: Path, kind: str, secrets: dict[str, str] | None = None, slurm: bool = False
) -> BoardRun:
    """Start argv (a list: no shell) in its own session, output to run_dir/console.log.

    secrets: environment variables for the run only (API keys): never in argv, board.json or the log.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **{k: v for k, v in (secrets or {}).items() if v}, "PYTHONUNBUFFERED": "1"}
    with open(run_dir / CONSOLE_FILE, "ab") as console:
        process = subprocess.Popen(
            argv,
            cwd=Path.cwd(),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=console,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C or closing the board does not reach the run
        )
    run = BoardRun(run_dir, argv, kind, process.pid, time.time(), process_start_time(process.pid), slurm)
    run.save()
    threading.Thread(target=_record_exit, args=(process, run), daemon=True).start()
    return run


def _record_exit(process: subprocess.Popen, run: BoardRun) -> None:
    run.returncode = process.wait()
    current = BoardRun.load(run.run_dir)
    if current.pid == run.pid:  # not restarted (resumed) meanwhile
        run.save()


def find_runs(root: Path | None = None) -> list[BoardRun]:
    """Every run the board started under outputs/ and multirun/, newest first (also those of a
    board that was closed: their processes went on)."""
    root = Path(root or Path.cwd())
    records = [
        path for name in RUN_ROOTS for pattern in RECORD_PATTERNS for path in (root / name).glob(pattern)
    ]
    runs = []
    for path in records:
        try:
            runs.append(BoardRun.load(path.parent))
        except (OSError, ValueError, TypeError):
            continue  # half-written by a run being started right now
    return sorted(runs, key=lambda run: run.started, reverse=True)


def running(runs: list[BoardRun], kind: str | None = None) -> list[BoardRun]:
    return [run for run in runs if run.running and (kind is None or run.kind == kind)]


def stop(run: BoardRun) -> str:
    """Ask the run to save a checkpoint at the end of its current step and end (USR2 to its process only)."""
    if not run.running:
        raise BoardError(f"{run.run_dir} is not running ({run.status}).")
    if run.slurm:
        raise BoardError(
            f"{run.run_dir} runs on Slurm: `scancel --signal=USR2 <job id>` checkpoints and requeues it; "
            "`scancel <job id>` ends it."
        )
    os.kill(run.pid, STOP_SIGNAL)
    return f"Stopping {run.run_dir}: it saves a checkpoint at the end of the current step, then ends."


def resume(run: BoardRun, secrets: dict[str, str] | None = None) -> BoardRun:
    """The same command in the same run dir: training continues from the last checkpoint."""
    if run.running:
        raise BoardError(f"{run.run_dir} is still running.")
    return start(run.argv, run.run_dir, run.kind, secrets, run.slurm)


def delete_run_dir(run_dir: Path, runs: list[BoardRun]) -> None:
    """Remove a run's files; refused while it (or a run inside it) runs, and for what is not a run dir."""
    run_dir = Path(run_dir).resolve()
    if not (run_dir / HYDRA_DIR).is_dir():
        raise BoardError(f"{run_dir} is not a run dir (no .hydra/ record): nothing deleted.")
    if any(run.run_dir.resolve().is_relative_to(run_dir) for run in running(runs)):
        raise BoardError(f"{run_dir} is running: stop it first.")
    shutil.rmtree(run_dir)
