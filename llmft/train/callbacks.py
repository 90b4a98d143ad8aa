"""Trainer callbacks for how the run was launched: checkpoints on USR2 (Slurm preemption, Stop), a replica
check for DDP."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from omegaconf import DictConfig
from transformers import TrainerCallback

from llmft.config.errors import ReportedError
from llmft.config.run_dir import REPLICAS_FILE
from llmft.track.ranks import world_size
from llmft.train.preemption import CheckpointOnPreemption, PreemptionState


def launch_callbacks(cfg: DictConfig, run_dir: Path) -> list[TrainerCallback]:
    callbacks: list[TrainerCallback] = []
    if world_size() > 1 and cfg.hardware.strategy == "ddp":
        callbacks.append(ReplicaRecord(run_dir))
    if PreemptionState.installed:  # a Slurm task, or a local run USR2 may stop (the board's Stop)
        callbacks.append(CheckpointOnPreemption())
    return callbacks


def trainable_digest(model) -> str:
    """sha256 of the trainable weights' bytes, in name order: equal digests = identical replicas."""
    import torch

    digest = hashlib.sha256()
    for name, parameter in sorted(model.named_parameters()):
        if parameter.requires_grad:
            digest.update(name.encode())
            digest.update(parameter.detach().contiguous().view(-1).view(torch.uint8).cpu().numpy().tobytes())
    return digest.hexdigest()


class ReplicasDisagree(ReportedError, RuntimeError):
    """DDP ranks ended training with different step counts or weights: the result cannot be trusted."""

    label = "launch error"


def replica_disagreement(replicas: list[dict]) -> str | None:
    """What differs between the ranks' reports (rank, global_step, trainable_sha256), or None."""
    reference = replicas[0]
    odd = [
        r
        for r in replicas[1:]
        if (r["global_step"], r["trainable_sha256"])
        != (reference["global_step"], reference["trainable_sha256"])
    ]
    if not odd:
        return None
    described = "; ".join(
        f"rank {r['rank']} at step {r['global_step']} with weights sha256 {r['trainable_sha256'][:16]}"
        for r in (reference, *odd)
    )
    return f"DDP replicas disagree at the end of training ({described})"


class ReplicaRecord(TrainerCallback):
    """At the end of DDP training every rank reports its step count and weight digest; rank 0 writes them
    to <run_dir>/replicas.json. Replicas that drifted apart fail the run on every rank (before the model
    is saved): weights that differ between ranks mean a broken setup, not a result."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / REPLICAS_FILE

    def on_train_end(self, args, state, control, model=None, **kwargs):
        import torch.distributed as dist

        if not dist.is_initialized() or model is None:
            return
        mine = {
            "rank": dist.get_rank(),
            "global_step": state.global_step,
            "trainable_sha256": trainable_digest(model),
        }
        replicas: list[dict | None] = [None] * dist.get_world_size()
        dist.all_gather_object(replicas, mine)
        if state.is_world_process_zero:
            self.path.write_text(json.dumps(replicas, indent=2))
        if (problem := replica_disagreement(replicas)) is not None:
            raise ReplicasDisagree(f"{problem}; see {self.path}.")
