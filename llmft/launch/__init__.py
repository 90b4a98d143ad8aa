"""Starting and restarting runs: torchrun workers for multi-process hardware, Slurm tasks joining one
torch.distributed world, checkpoint-and-requeue on preemption (checkpoint-and-stop for a local run),
resume from checkpoints."""

from llmft.launch.dispatch import run_task

__all__ = ["run_task"]
