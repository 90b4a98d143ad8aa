"""Which process of a torch.distributed world this is (torchrun and Slurm set RANK and WORLD_SIZE).

Rank 0 (or a lone process) is the one that writes the run's files and talks to the trackers.
"""

from __future__ import annotations

import os


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """Rank 0 of a torchrun/accelerate launch, or a single process."""
    return rank() == 0
