"""`python tests/kill_at_step.py STEP <run.py arguments>`: run.py, SIGKILLed right after it logs STEP.

A deterministic `kill -9` in the middle of training, after a checkpoint and before the next: nothing
gets to clean up, flush or save. (Timing a kill from outside would race the tiny model's fast steps.)
"""

import os
import runpy
import signal
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(kill_step: int, arguments: list[str]) -> None:
    sys.path.insert(0, str(ROOT))
    from llmft.track import run_log
    from llmft.train import ppo

    append_log = run_log.append_log

    def append_then_die(run_dir, step, values):
        append_log(run_dir, step, values)
        if step >= kill_step:
            os.kill(os.getpid(), signal.SIGKILL)

    run_log.append_log = ppo.append_log = append_then_die  # the Trainer's log callback, and PPO's loop
    sys.argv = [str(ROOT / "run.py"), *arguments]
    runpy.run_path(str(ROOT / "run.py"), run_name="__main__")


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2:])
