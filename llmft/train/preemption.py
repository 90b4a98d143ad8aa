"""USR2 means: save a checkpoint at the end of this step, then go (a rerun in the same run dir resumes).

Slurm sends it before a time limit or a preemption (then submitit, whose handler we wrap, requeues the
job); `kill -USR2 <pid>` (the board's Stop) sends it to a local run, which then ends KILLED in MLflow.
llmft.launch installs the handler where it starts a run; the Trainer callback acts on it.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from transformers import TrainerCallback

log = logging.getLogger(__name__)
PREEMPT_SIGNAL_ENV = "SUBMITIT_PREEMPT_SIGNAL"  # submitit's own setting (default USR2)


class RunStopped(KeyboardInterrupt):
    """The run was asked to stop: recorded KILLED, like Ctrl-C; the message says where to resume from."""


class PreemptionState:
    """Set by the signal handler, read by the Trainer callback; holds submitit's handler to call after."""

    requested = False
    listening = False  # a CheckpointOnPreemption callback will act on the request at its next step end
    installed = False  # install_preemption_handler ran in this process: add the callback to the Trainer
    submitit_handler: Callable[[int, FrameType | None], Any] | None = None
    signum = signal.SIGUSR2


def preemption_signal() -> signal.Signals:
    return signal.Signals["SIG" + os.environ.get(PREEMPT_SIGNAL_ENV, "USR2")]


def install_preemption_handler() -> None:
    """Put our handler in front of submitit's (if any): note the warning now, checkpoint at the next step end.

    submitit's handler requeues and exits at once, in the middle of a step, losing the work since the
    last periodic checkpoint; ours lets the Trainer save first, then calls it.
    """
    signum = preemption_signal()
    previous = signal.getsignal(signum)
    PreemptionState.signum = signum
    PreemptionState.submitit_handler = previous if callable(previous) else None
    PreemptionState.installed = True

    def note_preemption(received: int, frame: FrameType | None) -> None:
        if not PreemptionState.listening:  # no Trainer loop to save at a step end (loading, ppo, eval, ...)
            if PreemptionState.submitit_handler is not None:
                PreemptionState.submitit_handler(received, frame)  # requeue now; resume from the last save
                return
            raise RunStopped("stopped before the first training step: there was nothing to checkpoint")
        log.warning(
            "Received %s: saving a checkpoint at the end of this step, then stopping.",
            signal.Signals(received).name,
        )
        PreemptionState.requested = True

    signal.signal(signum, note_preemption)


def run_stoppable(task: Callable[[], float | None]) -> float | None:
    """A local run that USR2 stops with a checkpoint (the board's Stop); signal handlers can only be set
    from the main thread, so a run started from another thread (a test, a notebook server) just runs."""
    if threading.current_thread() is threading.main_thread():
        install_preemption_handler()
    return task()


class CheckpointOnPreemption(TrainerCallback):
    """At the first step end after the warning (on any rank), every rank saves the checkpoint and stops;
    then rank 0 hands over to submitit, which requeues the job (the rerun resumes from that checkpoint).
    A local run (no submitit) ends there with RunStopped."""

    def __init__(self) -> None:
        self.stopping = False

    def on_train_begin(self, args, state, control, **kwargs):
        PreemptionState.listening = True  # only a Trainer loop gets here; other stages stop at once
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
        if PreemptionState.submitit_handler is None:
            raise RunStopped(
                f"stopped at step {state.global_step}; checkpoint saved in {args.output_dir}. "
                "Rerun the same command (same hydra.run.dir) to resume."
            )
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.barrier()  # every rank's share of the checkpoint is on disk before the job goes
        log.warning("Checkpoint saved at step %d; handing over to submitit to requeue.", state.global_step)
        if state.is_world_process_zero:
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
