"""One entry for llmft.main (and each torchrun worker): run the task here, or start the processes the
hardware asks for."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig

from llmft.config.imports import import_entry_point
from llmft.config.tasks import TASKS
from llmft.launch.torchrun import (
    WorkersFailed,
    read_objective,
    run_workers,
    torchrun_command,
    worker_environment,
)
from llmft.launch.world import LaunchError, in_slurm_job, in_started_world, processes_per_node
from llmft.model.optional import packages_hidden, unused_packages

log = logging.getLogger(__name__)
Task = Callable[[], float | None]
DISTRIBUTED_TASKS = ("train",)  # tasks that run as several processes; the others run here, alone


def run_task(cfg: DictConfig, run_dir: Path) -> float | None:
    """Run the selected task (cfg.task.name) on cfg in run_dir as cfg.hardware asks; return its value.

    - hardware=slurm (a job submitted by `run.py -m`): this Slurm task joins the job's world;
    - several processes or nodes: torchrun workers on the saved config, this process waits for them;
    - otherwise (or already inside a worker): the task runs in this process; a lone training process
      stops with a checkpoint on USR2.
    """
    with packages_hidden(unused_packages(cfg)):  # seconds of start-up saved
        return _dispatch(cfg, Path(run_dir), lambda: import_entry_point(TASKS[cfg.task.name])(cfg, run_dir))


def _dispatch(cfg: DictConfig, run_dir: Path, task: Task) -> float | None:
    hardware = cfg.hardware
    if hardware.scheduler == "slurm":
        if not in_slurm_job():
            raise LaunchError(
                "hardware=slurm submits every run as a Slurm job through Hydra's launcher: add -m "
                "(python run.py -m hardware=slurm ...), or hardware.slurm.dry_run=true to see the sbatch script."
            )
        from llmft.launch.slurm import run_slurm_task

        return run_slurm_task(task)
    if in_started_world() or cfg.task.name not in DISTRIBUTED_TASKS:
        return task()
    nproc = processes_per_node(hardware)
    if nproc == 1 and hardware.nnodes == 1:
        run_stoppable = import_entry_point("llmft.train.preemption:run_stoppable")  # transformers, peft
        return run_stoppable(task)  # `kill -USR2 <pid>` saves a checkpoint and ends the run
    return _start_workers(cfg, run_dir, nproc)


def _start_workers(cfg: DictConfig, run_dir: Path, nproc: int) -> float | None:
    command = torchrun_command(cfg.hardware, nproc, run_dir)
    log.info("Starting %d worker(s) on this node: %s", nproc, " ".join(command))
    returncode = run_workers(command, env=worker_environment(cfg))
    if returncode != 0:
        raise WorkersFailed(returncode)
    return read_objective(run_dir)
