"""loss.png: the training (and eval) loss curve of one run."""

from __future__ import annotations

from pathlib import Path

from llmft.config.run_dir import PLOT_FILE
from llmft.track.run_files import loss_series, read_log


def plot_loss(run_dir: Path, title: str) -> Path | None:
    """Draw loss (and eval_loss when present) against the step; None when nothing was logged."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers
    import matplotlib.pyplot as plt

    records = read_log(run_dir)
    steps, losses = loss_series(records, "loss")
    if not steps:
        return None
    figure, axes = plt.subplots(figsize=(7, 4), dpi=110)
    axes.plot(steps, losses, marker=".", label="train loss")
    eval_steps, eval_losses = loss_series(records, "eval_loss")
    if eval_steps:
        axes.plot(eval_steps, eval_losses, marker="o", label="eval loss")
    axes.set_xlabel("step")
    axes.set_ylabel("loss")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    path = Path(run_dir) / PLOT_FILE
    figure.savefig(path)
    plt.close(figure)
    return path
