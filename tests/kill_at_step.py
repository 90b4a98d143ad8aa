"""`python tests/kill_at_step.py RUN_DIR STEP <run.py arguments>`: run.py, SIGKILLed right after it logs
STEP in RUN_DIR (a run dir, or one job's dir of a multirun).

A deterministic `kill -9` in the middle of training, after a checkpoint and before the next: nothing
gets to clean up, flush or save. (Timing a kill from outside would race the tiny model's fast steps.)
"""

import os
import runpy
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_killed(kill_dir: Path, kill_step: int, *arguments: str) -> subprocess.CompletedProcess:
    """`python run.py <arguments>` from the project root, killed after it logs kill_step in kill_dir."""
    return subprocess.run(
        [sys.executable, __file__, str(kill_dir), str(kill_step), *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


def main(kill_dir: Path, kill_step: int, arguments: list[str]) -> None:
    sys.path.insert(0, str(ROOT))
    from llmft.track import run_log

    append_log = run_log.append_log

    def append_then_die(run_dir, step, values):
        append_log(run_dir, step, values)
        if Path(run_dir).resolve() == kill_dir and step >= kill_step:
            os.kill(os.getpid(), signal.SIGKILL)

    run_log.append_log = append_then_die  # the log callback of the Trainer and of PPO's loop
    sys.argv = [str(ROOT / "run.py"), *arguments]
    runpy.run_path(str(ROOT / "run.py"), run_name="__main__")


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve(), int(sys.argv[2]), sys.argv[3:])
