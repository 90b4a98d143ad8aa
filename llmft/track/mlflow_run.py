"""Open and close the MLflow run of one job: name, params, tags, artifacts, final status.

We call MLflow's client API ourselves rather than transformers' MLflowCallback, which logs every
TrainingArguments field as a param (tokens included) and knows nothing of sweeps.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shlex
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from llmft.config.run_dir import (
    BENCHMARK_PREDICTIONS_FILE,
    ENV_FILE,
    HYDRA_DIR,
    LOG_FILE,
    METRICS_FILE,
    MLFLOW_RUN_FILE,
    PLOT_FILE,
    PREDICTIONS_FILE,
    RESULT_DIRS,
)
from llmft.track import mlflow_store
from llmft.track.params import config_params, plain_config
from llmft.track.run_files import is_number
from llmft.track.secrets import redact_arguments, redact_text

log = logging.getLogger(__name__)
# What a run leaves that is worth keeping beside its metrics (training, task=predict, task=eval).
ARTIFACT_FILES = (
    LOG_FILE,
    METRICS_FILE,
    PLOT_FILE,
    ENV_FILE,
    PREDICTIONS_FILE,
    BENCHMARK_PREDICTIONS_FILE,
)
MAX_TAG_LENGTH = 5000
BATCH = 100  # MLflow accepts at most 100 params per log_batch call


@dataclass
class MlflowRun:
    client: Any  # mlflow.tracking.MlflowClient
    run_id: str
    tracking_uri: str
    last_timestamp: int = 0  # ms; strictly increasing, so a later value at the same step is the one shown

    def log_metrics(self, values: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = self.last_timestamp = max(int(time.time() * 1000), self.last_timestamp + 1)
        metrics = [Metric(key, float(value), now, step) for key, value in values.items() if is_number(value)]
        for start in range(0, len(metrics), 1000):
            self.client.log_batch(self.run_id, metrics=metrics[start : start + 1000])

    def log_params(self, params: dict[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(key, value) for key, value in params.items()]
        for start in range(0, len(items), BATCH):
            self.client.log_batch(self.run_id, params=items[start : start + BATCH])

    def set_tags(self, tags: dict[str, object]) -> None:
        from mlflow.entities import RunTag

        items = [RunTag(key, str(value)[:MAX_TAG_LENGTH]) for key, value in tags.items() if value is not None]
        self.client.log_batch(self.run_id, tags=items)


def config_hash(cfg: DictConfig) -> str:
    """Six hex digits that differ when the composed config differs."""
    text = json.dumps(plain_config(cfg), sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:6]


def run_name(cfg: DictConfig) -> str:
    """logger.run_name, else `<model>-<method or task>-<dataset>-<config hash>`, e.g.
    tiny-llama-lora_sft-demo_sft-3f9a2c, tiny-llama-predict-demo_sft-0b41d7."""
    if cfg.logger.get("run_name"):
        return cfg.logger.run_name
    model = Path(str(cfg.model.name_or_path)).name
    what = f"{cfg.method.finetuning_type}_{cfg.method.stage}" if cfg.task.name == "train" else cfg.task.name
    datasets = "+".join(cfg.dataset) or "nodata"
    return f"{model}-{what}-{datasets}-{config_hash(cfg)}"


def hydra_job() -> dict[str, object]:
    """This job's overrides and sweep position, when Hydra started it."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return {}
    hydra = HydraConfig.get()
    return {
        "overrides": redact_arguments(OmegaConf.to_container(hydra.overrides.task)),
        "job_num": hydra.job.get("num"),
        "mode": str(hydra.mode.name) if hydra.mode is not None else None,
    }


def run_tags(cfg: DictConfig, run_dir: Path, environment: dict | None) -> dict[str, object]:
    env = environment or {}
    job = hydra_job()
    tags: dict[str, object] = {
        "llmft.command": shlex.join(redact_arguments(sys.argv)),
        "llmft.overrides": " ".join(job.get("overrides", [])),
        "llmft.run_dir": str(Path(run_dir).resolve()),
        "llmft.task": cfg.task.name,
        "llmft.config_hash": config_hash(cfg),
        "mlflow.source.name": "run.py",
        "mlflow.source.git.commit": env.get("git", {}).get("commit"),
        "git.dirty": env.get("git", {}).get("dirty"),
        "python": env.get("python"),
    }
    if job.get("mode") == "MULTIRUN":
        tags["llmft.sweep_job"] = job.get("job_num")
    tags.update({f"version.{name}": version for name, version in env.get("packages", {}).items() if version})
    tags.update({f"hardware.{key}": value for key, value in env.get("hardware", {}).items()})
    return tags


def open_run(
    cfg: DictConfig, run_dir: Path, environment: dict | None = None, parent: dict | None = None
) -> MlflowRun:
    """Start (or, for a resumed run dir, reopen) the MLflow run recording run_dir.

    `parent` ({tracking_uri, experiment_id, run_id}) attaches the run to a sweep's parent run.
    """
    own_uri = mlflow_store.tracking_uri(cfg.logger.tracking_uri)  # also hands its credentials to MLflow
    uri = parent["tracking_uri"] if parent else own_uri
    client = mlflow_store.client(uri)
    previous = continued_run(run_dir, uri, parent)
    if previous is not None:
        client.update_run(previous, status="RUNNING")
        log.info("Continuing MLflow run %s (resumed run dir).", previous)
        return MlflowRun(client, previous, uri)
    experiment = (
        parent["experiment_id"]
        if parent
        else mlflow_store.experiment_id(client, uri, cfg.logger.experiment_name)
    )
    tags = run_tags(cfg, run_dir, environment)
    if parent:
        tags["mlflow.parentRunId"] = parent["run_id"]
    name = run_name(cfg)
    created = client.create_run(experiment, run_name=name)
    run = MlflowRun(client, created.info.run_id, uri)
    run.set_tags(tags)
    run.log_params(config_params(cfg))
    record = {
        "tracking_uri": uri,
        "experiment_id": experiment,
        "run_id": run.run_id,
        "parent_run_id": parent["run_id"] if parent else None,
    }
    Path(run_dir, MLFLOW_RUN_FILE).write_text(json.dumps(record))
    log.info("MLflow run %s (%s) in %s", run.run_id, name, uri)
    return run


def continued_run(run_dir: Path, uri: str, parent: dict | None) -> str | None:
    """The MLflow run already recording run_dir (a resumed run), if it lives in this store under this
    parent: a rerun sweep has a new parent run, so its jobs' runs are new too."""
    path = Path(run_dir) / MLFLOW_RUN_FILE
    if not path.exists():
        return None
    recorded = json.loads(path.read_text())
    same_parent = recorded.get("parent_run_id") == (parent["run_id"] if parent else None)
    return recorded["run_id"] if recorded.get("tracking_uri") == uri and same_parent else None


def recorded_run_id(run_dir: Path) -> str | None:
    path = Path(run_dir) / MLFLOW_RUN_FILE
    return json.loads(path.read_text())["run_id"] if path.exists() else None


def log_run_artifacts(run: MlflowRun, cfg: DictConfig, run_dir: Path) -> None:
    """The composed config (resolved, redacted), Hydra's record, the run files and optionally the model."""
    run_dir = Path(run_dir)
    run.client.log_text(run.run_id, OmegaConf.to_yaml(OmegaConf.create(plain_config(cfg))), "config.yaml")
    hydra_dir = run_dir / HYDRA_DIR
    if hydra_dir.is_dir():
        run.client.log_artifacts(run.run_id, str(hydra_dir), "hydra")
    for name in ARTIFACT_FILES:
        if (run_dir / name).exists():
            run.client.log_artifact(run.run_id, str(run_dir / name))
    if cfg.logger.get("log_model"):
        for name in RESULT_DIRS:
            if (run_dir / name).is_dir():
                run.client.log_artifacts(run.run_id, str(run_dir / name), name)


def finish_run(run: MlflowRun, cfg: DictConfig, run_dir: Path, error: BaseException | None = None) -> None:
    """Log the artifacts, then mark the run FINISHED, FAILED (with its error) or KILLED."""
    try:
        log_run_artifacts(run, cfg, run_dir)
        if error is not None:
            run.set_tags({"llmft.error": redact_text(f"{type(error).__name__}: {error}")})
            trace = "".join(traceback.format_exception(type(error), error, error.__traceback__))
            run.client.log_text(run.run_id, redact_text(trace), "error.txt")
    finally:
        run.client.set_terminated(run.run_id, status=_status(error))


def _status(error: BaseException | None) -> str:
    if error is None:
        return "FINISHED"
    return "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED"
