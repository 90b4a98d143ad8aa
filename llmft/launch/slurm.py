"""Inside a Slurm job submitted by hydra-submitit-launcher: join the job's torch.distributed world,
and turn the time-limit/preemption warning (USR2) into a checkpoint before submitit requeues the job
(llmft.train.preemption)."""

from __future__ import annotations

import logging
from collections.abc import Callable

log = logging.getLogger(__name__)


def join_slurm_world() -> None:
    """Export RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR (the job's first node), MASTER_PORT from Slurm's
    variables, so the Trainer initialises torch.distributed (env://) across the job's tasks."""
    from submitit import JobEnvironment
    from submitit.helpers import TorchDistributedEnvironment

    if JobEnvironment().num_tasks == 1:
        return
    # Every task keeps every GPU visible: the Trainer and the loader pick theirs by LOCAL_RANK.
    env = TorchDistributedEnvironment().export(set_cuda_visible_devices=False, overwrite=True)
    log.info("Slurm task %d of %d joins %s:%d", env.rank, env.world_size, env.master_addr, env.master_port)


def run_slurm_task(task: Callable[[], float | None]) -> float | None:
    from llmft.train.preemption import install_preemption_handler

    join_slurm_world()
    install_preemption_handler()
    return task()
