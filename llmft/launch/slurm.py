"""Inside a Slurm job submitted by hydra-submitit-launcher: join the job's torch.distributed world,
and turn the time-limit/preemption warning (USR2) into a checkpoint before submitit requeues the job."""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable
from types import FrameType
from typing import Any

from transformers import TrainerCallback

log = logging.getLogger(__name__)
PREEMPT_SIGNAL_ENV = "SUBMITIT_PREEMPT_SIGNAL"  # submitit's own setting (default USR2)


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


class PreemptionState:
    """Set by the signal handler, read by the Trainer callback; holds submitit's handler to call after."""

    requested = False
    listening = False  # a CheckpointOnPreemption callback will act on the request at its next step end
    submitit_handler: Callable[[int, FrameType | None], Any] | None = None
    signum = signal.SIGUSR2


def preemption_signal() -> signal.Signals:
    return signal.Signals["SIG" + os.environ.get(PREEMPT_SIGNAL_ENV, "USR2")]


def install_preemption_handler() -> None:
    """Put our handler in front of submitit's: note the warning now, checkpoint at the next step end.

    submitit's handler requeues and exits at once, in the middle of a step, losing the work since the
    last periodic checkpoint; ours lets the Trainer save first, then calls it.
    """
    signum = preemption_signal()
    previous = signal.getsignal(signum)
    PreemptionState.signum = signum
    PreemptionState.submitit_handler = previous if callable(previous) else None

    def note_preemption(received: int, frame: FrameType | None) -> None:
        if not PreemptionState.listening:  # no Trainer loop to save at a step end (ppo, eval, ...)
            if PreemptionState.submitit_handler is not None:
                PreemptionState.submitit_handler(received, frame)  # requeue now; resume from the last save
            return
        log.warning(
            "Received %s: saving a checkpoint at the end of this step, then requeueing.",
            signal.Signals(received).name,
        )
        PreemptionState.requested = True

    signal.signal(signum, note_preemption)


def run_slurm_task(task: Callable[[], float | None]) -> float | None:
    join_slurm_world()
    install_preemption_handler()
    return task()


class CheckpointOnPreemption(TrainerCallback):
    """At the first step end after the warning (on any rank), every rank saves the checkpoint and stops;
    then rank 0 hands over to submitit, which requeues the job (the rerun resumes from that checkpoint)."""

    def __init__(self) -> None:
        self.stopping = False

    def on_train_begin(self, args, state, control, **kwargs):
        PreemptionState.listening = True  # only a Trainer loop gets here; other stages requeue at once
        return control

    def on_step_end(self, args, state, control, **kwargs):
        if _any_rank(PreemptionState.requested, args.device):
            self.stopping = True
            control.should_save = True
            control.should_training_stop = True
        return control

    def on_save(self, args, state, control, **kwargs):
        if not self.stopping:
            return control
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.barrier()  # every rank's share of the checkpoint is on disk before the job goes
        log.warning("Checkpoint saved at step %d; handing over to submitit to requeue.", state.global_step)
        if state.is_world_process_zero and PreemptionState.submitit_handler is not None:
            PreemptionState.submitit_handler(PreemptionState.signum, None)  # requeues, then exits
        raise SystemExit(0)  # other ranks: the requeue ends the job; leave without a result


def _any_rank(flag: bool, device: Any) -> bool:
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return flag
    value = torch.tensor([1 if flag else 0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())
