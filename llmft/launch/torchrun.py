"""Start the worker processes with torchrun on the saved config, wait, forward signals and the outcome."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from llmft.config.run_dir import OBJECTIVE_FILE
from llmft.launch.world import LaunchError

# The composed config travels to the workers in the environment, not through .hydra/config.yaml:
# that file is the run's record, and secrets in it are redacted.
WORKER_CONFIG_ENV = "LLMFT_WORKER_CONFIG"
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class WorkersFailed(LaunchError):
    def __init__(self, returncode: int) -> None:
        super().__init__(
            f"the training workers failed (torchrun exit code {returncode}); their output and the first "
            "failing rank's traceback are above."
        )
        self.returncode = returncode


def torchrun_command(hardware: DictConfig, nproc_per_node: int, run_dir: Path) -> list[str]:
    """`python -m torch.distributed.run ... -m llmft.launch.worker <run_dir>` for this node."""
    if hardware.nnodes == 1:
        rendezvous = ["--standalone"]  # a free local port: runs on one machine never collide
    else:
        rendezvous = [
            f"--nnodes={hardware.nnodes}",
            f"--node-rank={hardware.node_rank}",
            f"--master-addr={hardware.master_addr}",
            f"--master-port={hardware.master_port}",
        ]
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nproc-per-node={nproc_per_node}",
        *rendezvous,
        "-m",
        "llmft.launch.worker",
        str(Path(run_dir).resolve()),
    ]


def worker_environment(cfg: DictConfig) -> dict[str, str]:
    """This process's environment plus the composed config (as YAML) for the workers to run."""
    return {**os.environ, WORKER_CONFIG_ENV: OmegaConf.to_yaml(cfg)}


def run_workers(command: list[str], env: dict[str, str] | None = None) -> int:
    """Run torchrun in its own process group, passing on Ctrl-C and SIGTERM; its exit code.

    The workers write to this process's stdout/stderr, so their output shows as it comes.
    """
    process = subprocess.Popen(command, start_new_session=True, env=env)
    if threading.current_thread() is not threading.main_thread():
        return process.wait()
    previous = {
        sig: signal.signal(sig, lambda signum, _: process.send_signal(signum)) for sig in FORWARDED_SIGNALS
    }
    try:
        return process.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def write_objective(run_dir: Path, value: float | None) -> None:
    Path(run_dir, OBJECTIVE_FILE).write_text(json.dumps({"objective": value}))


def read_objective(run_dir: Path) -> float | None:
    path = Path(run_dir) / OBJECTIVE_FILE
    return json.loads(path.read_text())["objective"] if path.exists() else None
