"""Sweep jobs that fail without sinking the sweep.

Hydra's basic sweeper re-raises the first failed job's error once its batch has run, so later
batches and the end-of-sweep summary never happen (the Optuna sweeper stops the same way).
Wrapped by `keep_sweep_going`, a failing multirun job logs its traceback, records itself as
FAILED (job_status.json, and an MLflow run when the failure came before training opened one)
and returns None; the sweep goes on, and the callback's summary exits non-zero at the end.
In a rerun of a sweep (same sweep dir), a job whose overrides already FINISHED there is skipped and
returns its recorded objective, so a killed grid continues where it stopped.
A single run (not a multirun) fails as usual.
"""

from __future__ import annotations

import functools
import json
import logging
import math
from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from llmft.config.run_dir import JOB_FILE
from llmft.track.secrets import redact_arguments, redact_text
from llmft.track.sweep import this_sweep

log = logging.getLogger(__name__)
Task = Callable[[DictConfig], float | None]


def keep_sweep_going(task: Task) -> Task:
    @functools.wraps(task)
    def sweep_job(cfg: DictConfig) -> float | None:
        sweep = this_sweep()
        if sweep is None:
            return task(cfg)
        from hydra.core.hydra_config import HydraConfig

        output_dir = Path(HydraConfig.get().runtime.output_dir)
        earlier = finished_earlier(sweep[0], sweep[1]["sweep_id"], job_overrides())
        if earlier is not None:
            log.info(
                "Job %s skipped: it FINISHED in an earlier run of this sweep.", HydraConfig.get().job.num
            )
            return earlier["objective"]
        try:
            value = task(cfg)
        except Exception as error:  # noqa: BLE001 - recorded, and reported by the sweep summary
            log.exception("Job %s failed; the other jobs go on.", HydraConfig.get().job.num)
            write_job_status(
                output_dir, sweep[1], "FAILED", error=redact_text(f"{type(error).__name__}: {error}")
            )
            _record_failure_in_mlflow(cfg, output_dir, sweep[1].get("mlflow"), error)
            return None
        write_job_status(output_dir, sweep[1], "FINISHED", objective=value)
        return value

    return sweep_job


def job_overrides() -> list[str]:
    """This job's command-line overrides, secrets redacted (how a rerun sweep recognises a job)."""
    from hydra.core.hydra_config import HydraConfig

    return redact_arguments(OmegaConf.to_container(HydraConfig.get().overrides.task))


def finished_earlier(sweep_dir: Path, sweep_id: str, overrides: list[str]) -> dict | None:
    """The job status of an earlier, FINISHED job of this sweep with the same overrides, if any."""
    for path in Path(sweep_dir).rglob(JOB_FILE):
        status = json.loads(path.read_text())
        if (status["sweep_id"], status["status"], status["overrides"]) == (sweep_id, "FINISHED", overrides):
            return status
    return None


def write_job_status(
    output_dir: Path, sweep: dict, status: str, objective: float | None = None, error: str | None = None
) -> None:
    from hydra.core.hydra_config import HydraConfig

    hydra = HydraConfig.get()
    record = {
        "sweep_id": sweep["sweep_id"],
        "job_num": hydra.job.num,
        "overrides": job_overrides(),
        "status": status,
        "objective": float(objective) if objective is not None and math.isfinite(float(objective)) else None,
        "error": error,
    }
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / JOB_FILE).write_text(json.dumps(record, indent=2))


def _record_failure_in_mlflow(
    cfg: DictConfig, output_dir: Path, parent: dict | None, error: Exception
) -> None:
    """A job that failed before training opened its MLflow run (bad config, missing data) still shows FAILED."""
    from llmft.track.mlflow_run import continued_run, finish_run, open_run

    if parent is None or continued_run(output_dir, parent["tracking_uri"], parent) is not None:
        return  # its MLflow run opened, and recorded the failure
    try:
        finish_run(open_run(cfg, output_dir, parent=parent), cfg, output_dir, error)
    except Exception as tracking_error:  # noqa: BLE001 - the job's own error is already recorded
        log.warning("Could not record job failure in MLflow: %s", tracking_error)
