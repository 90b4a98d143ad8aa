"""The MLflow side of a training run: a run opened before the stage, per-step metrics, closed after."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from pathlib import Path

from omegaconf import DictConfig
from transformers import TrainerCallback

from llmft.config.run_dir import SWANLAB_DIR
from llmft.track.mlflow_run import MlflowRun, finish_run, open_run, run_name
from llmft.track.params import config_params
from llmft.track.ranks import is_main_process
from llmft.track.reporters import require_tracker_packages
from llmft.track.run_files import is_number, read_metrics
from llmft.track.sweep import parent_of_this_job

log = logging.getLogger(__name__)


class MlflowMetricsCallback(TrainerCallback):
    """Sends every Trainer log (loss, learning_rate, grad_norm, eval_*, stage metrics) and tokens/s to MLflow."""

    def __init__(self, run: MlflowRun) -> None:
        self.run = run
        self.last_step = 0
        self._since: tuple[float, int] | None = None  # (time, tokens seen) at the previous training log

    def on_train_begin(self, args, state, control, **kwargs):
        self._since = (time.perf_counter(), state.num_input_tokens_seen)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        values = {key: value for key, value in logs.items() if is_number(value)}
        if "loss" in values and self._since is not None:
            values["tokens_per_second"] = self._tokens_per_second(state.num_input_tokens_seen)
        self.log(values, state.global_step)

    def _tokens_per_second(self, tokens_seen: int) -> float:
        now = time.perf_counter()
        then, tokens_then = self._since
        self._since = (now, tokens_seen)
        return (tokens_seen - tokens_then) / (now - then) if now > then else 0.0

    def log(self, values: dict[str, float], step: int) -> None:
        self.run.log_metrics(values, step)
        self.last_step = max(self.last_step, step)

    def log_final(self, metrics: dict[str, float]) -> None:
        """The stage's final figures (metrics.json) at the last step: they supersede the Trainer's own."""
        self.log(metrics, self.last_step)


@contextlib.contextmanager
def tracked_run(
    cfg: DictConfig, run_dir: Path, environment: dict | None = None
) -> Iterator[list[TrainerCallback]]:
    """Record the enclosed training in MLflow (when logger.mlflow); yields the Trainer callbacks to add.

    The run ends FINISHED, or FAILED/KILLED with the error when the block raises (the error propagates).
    Inside a multirun it becomes a child of the sweep's parent run. Other trackers (TensorBoard, W&B,
    SwanLab) are transformers' own callbacks, switched on by llmft.track.reporters.report_to; they are
    checked here.
    """
    require_tracker_packages(cfg.logger)
    with _tracker_runs(cfg, run_dir):
        if not cfg.logger.mlflow or not is_main_process():
            yield []
            return
        run = open_run(cfg, run_dir, environment, parent=parent_of_this_job())
        callback = MlflowMetricsCallback(run)
        try:
            yield [callback]
            callback.log_final(read_metrics(run_dir))
        except BaseException as error:
            try:
                finish_run(run, cfg, run_dir, error)
            except Exception as tracking_error:  # noqa: BLE001 - the training error matters more
                log.warning("Could not record the failure in MLflow: %s", tracking_error)
            raise
        finish_run(run, cfg, run_dir)


@contextlib.contextmanager
def _tracker_runs(cfg: DictConfig, run_dir: Path) -> Iterator[None]:
    """The W&B and SwanLab runs around a training.

    transformers' W&B callback opens a run and leaves it open until the process exits, so the next job
    of a multirun in this process would log into it: it is closed here. The SwanLab run is opened here
    as well (with swanlab 0.10, transformers' callback cannot open one: it only logs into an open run).
    """
    if cfg.logger.swanlab and is_main_process():
        _open_swanlab_run(cfg, run_dir)
    try:
        yield
    except BaseException:
        _finish_tracker_runs(cfg.logger, failed=True)
        raise
    _finish_tracker_runs(cfg.logger, failed=False)


def _open_swanlab_run(cfg: DictConfig, run_dir: Path) -> None:
    """Offline by default: written under <run dir>/swanlog, uploaded later with `swanlab sync`."""
    import swanlab

    swanlab.init(
        project=cfg.logger.swanlab_project,
        mode=cfg.logger.swanlab_mode,
        log_dir=str(Path(run_dir).resolve() / SWANLAB_DIR),
        name=run_name(cfg),
        config=config_params(cfg),  # secrets already replaced by ***
    )


def _finish_tracker_runs(logger: DictConfig, failed: bool) -> None:
    if logger.wandb:
        import wandb

        if wandb.run is not None:
            wandb.finish(exit_code=int(failed))
    if logger.swanlab:
        import swanlab

        if swanlab.has_run():
            swanlab.finish(state="crashed" if failed else "success")
