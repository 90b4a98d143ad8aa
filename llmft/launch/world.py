"""Where this process stands: a lone process, a torchrun worker, a Slurm task; how many per node."""

from __future__ import annotations

import os

from omegaconf import DictConfig

from llmft.config.errors import ReportedError


class LaunchError(ReportedError, RuntimeError):
    """The requested processes cannot be started here (too few GPUs, not inside Slurm, ...)."""

    label = "launch error"


def in_started_world() -> bool:
    """A process of a torch.distributed world someone already started (torchrun, or a Slurm task we set up)."""
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def in_slurm_job() -> bool:
    """Running as a job submitit submitted to Slurm (its sbatch script sets this)."""
    return os.environ.get("SUBMITIT_EXECUTOR") == "slurm"


def uses_cuda(hardware: DictConfig) -> bool:
    import torch

    return hardware.device == "cuda" or (hardware.device == "auto" and torch.cuda.is_available())


def processes_per_node(hardware: DictConfig) -> int:
    """hardware.nproc_per_node as a number, checked against the GPUs this node shows."""
    import torch

    gpus = torch.cuda.device_count() if uses_cuda(hardware) else 0
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    where = f" (CUDA_VISIBLE_DEVICES={visible})" if visible is not None else ""
    if hardware.device == "cuda" and gpus == 0:
        raise LaunchError(
            f"hardware.device=cuda (hardware=gpu, fsdp, deepspeed_*) but no CUDA GPU is visible{where}: "
            "run on a GPU machine, or use hardware=multi_gpu hardware.device=cpu hardware.backend=gloo."
        )
    if hardware.nproc_per_node == "auto":
        if gpus == 0:
            raise LaunchError(
                "hardware.nproc_per_node=auto starts one process per GPU, but no CUDA GPU is visible"
                f"{where}. On the CPU give a number: hardware.device=cpu hardware.backend=gloo "
                "hardware.nproc_per_node=2."
            )
        return gpus
    if gpus and hardware.nproc_per_node > gpus:
        raise LaunchError(
            f"hardware.nproc_per_node={hardware.nproc_per_node} asks for more processes than the {gpus} "
            f"GPU(s) visible on this node{where}: lower it, or use hardware.nproc_per_node=auto."
        )
    return int(hardware.nproc_per_node)
