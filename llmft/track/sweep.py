"""A multirun as one MLflow parent run with a child run per job, and its summary at the end.

The Hydra callback (llmft.track.hydra_callbacks) calls `start_sweep` before the first job and
`finish_sweep` after the last. `start_sweep` writes `<sweep dir>/sweep.json`; jobs read it to
attach to the parent, whichever process or machine they run in (basic launcher, submitit, Slurm).
"""

from __future__ import annotations

import json
import logging
import shlex
import sys
import uuid
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from llmft.track import mlflow_store
from llmft.track.mlflow_run import MlflowRun
from llmft.track.params import as_text
from llmft.track.secrets import redact_arguments, redact_value
from llmft.track.summary import (
    RunRow,
    best_row,
    format_table,
    measured_objective,
    parse_overrides,
    plot_comparison,
    sweep_rows,
    varying_keys,
    write_csv,
)

log = logging.getLogger(__name__)
SWEEP_FILE = "sweep.json"
SUMMARY_CSV = "summary.csv"
SUMMARY_PLOT = "summary.png"
OPTUNA_RESULTS = "optimization_results.yaml"  # written by hydra-optuna-sweeper


def sweep_dir(config: DictConfig) -> Path:
    return Path(config.hydra.sweep.dir).resolve()


def read_sweep(directory: Path) -> dict | None:
    path = Path(directory) / SWEEP_FILE
    return json.loads(path.read_text()) if path.exists() else None


def this_sweep() -> tuple[Path, dict] | None:
    """(sweep dir, sweep.json) when this process runs a job of a multirun."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    # The job's dir lies under the sweep dir (hydra.sweep.subdir may nest it): look upwards, which also
    # works where a launcher changed the cwd or re-resolved ${now:...} in another process.
    for directory in Path(HydraConfig.get().runtime.output_dir).parents:
        record = read_sweep(directory)
        if record is not None:
            return directory, record
    return None


def parent_of_this_job() -> dict | None:
    """{tracking_uri, experiment_id, run_id} of the sweep's parent run, for a job of a tracked multirun."""
    sweep = this_sweep()
    return sweep[1].get("mlflow") if sweep else None


def direction(config: DictConfig) -> str:
    """minimize | maximize: the Optuna sweeper's setting; other sweepers minimize (losses)."""
    value = OmegaConf.select(config, "hydra.sweeper.direction", default="minimize")
    value = value[0] if OmegaConf.is_list(value) or isinstance(value, list) else value
    return getattr(value, "name", str(value))


def sweep_definition(config: DictConfig) -> dict[str, str]:
    """What is swept: the command-line overrides plus an Optuna search space (hydra.sweeper.params)."""
    definition = parse_overrides(redact_arguments(OmegaConf.to_container(config.hydra.overrides.task)))
    search_space = OmegaConf.select(config, "hydra.sweeper.params") or {}
    definition.update({str(key): str(redact_value(str(key), value)) for key, value in search_space.items()})
    return definition


def start_sweep(config: DictConfig) -> dict:
    """Write sweep.json (and open the MLflow parent run when logger.mlflow) before any job starts.

    A sweep dir that already holds a sweep.json is a rerun of a killed or failed sweep: it keeps its
    sweep id, so the jobs that FINISHED are skipped (llmft.track.jobs) and still count in the summary.
    Its old parent run, left RUNNING by a killed process, is marked KILLED with its unfinished jobs;
    a new parent run records this session.
    """
    directory = sweep_dir(config)
    directory.mkdir(parents=True, exist_ok=True)
    previous = read_sweep(directory)
    if previous is not None:
        log.warning("Continuing the sweep in %s: jobs that already FINISHED are skipped.", directory)
    mlflow = None
    if config.logger.mlflow:
        uri = mlflow_store.tracking_uri(config.logger.tracking_uri)  # also hands its credentials to MLflow
        if previous is not None and previous.get("mlflow"):
            _mark_killed(previous["mlflow"])
        mlflow = _open_parent(config, directory, uri, previous)
    record = {
        "sweep_id": previous["sweep_id"] if previous else uuid.uuid4().hex,
        "direction": direction(config),
        "objective": config.task.objective,
        "mlflow": mlflow,
    }
    (directory / SWEEP_FILE).write_text(json.dumps(record, indent=2))
    return record


def fail_if_unfinished(config: DictConfig) -> None:
    """At exit of the sweep's process: a sweep stopped before its end (a job's override failing Hydra's
    own checks, which the sweeper makes before launching a batch; an exception) leaves its parent run
    RUNNING. Mark it FAILED; the error is in the command's output."""
    parent = (read_sweep(sweep_dir(config)) or {}).get("mlflow")
    if not parent:
        return
    client = mlflow_store.client(parent["tracking_uri"])
    if client.get_run(parent["run_id"]).info.status == "RUNNING":
        client.set_terminated(parent["run_id"], status="FAILED")
        log.warning(
            "The sweep stopped before its end: its MLflow parent run %s is marked FAILED.", parent["run_id"]
        )


def _mark_killed(parent: dict) -> None:
    """A sweep whose process was killed leaves its parent run, and the job it was running, RUNNING."""
    client = mlflow_store.client(parent["tracking_uri"])
    if client.get_run(parent["run_id"]).info.status != "RUNNING":
        return
    unfinished = client.search_runs(
        [parent["experiment_id"]],
        filter_string=f"tags.mlflow.parentRunId = '{parent['run_id']}' and attributes.status = 'RUNNING'",
    )
    for run in unfinished:
        client.set_terminated(run.info.run_id, status="KILLED")
    client.set_terminated(parent["run_id"], status="KILLED")
    log.warning(
        "The sweep's previous parent run %s was killed: marked KILLED, with %d unfinished job(s).",
        parent["run_id"],
        len(unfinished),
    )


def _open_parent(config: DictConfig, directory: Path, uri: str, previous: dict | None) -> dict:
    client = mlflow_store.client(uri)
    experiment = mlflow_store.experiment_id(client, uri, config.logger.experiment_name)
    model = Path(str(config.model.name_or_path)).name
    name = f"sweep-{model}-{config.method.finetuning_type}_{config.method.stage}-{directory.name}"
    parent = MlflowRun(client, client.create_run(experiment, run_name=name).info.run_id, uri)
    sweeper = OmegaConf.select(config, "hydra.sweeper._target_", default="basic")
    parent.set_tags(
        {
            "llmft.sweep": "true",
            "llmft.sweep_dir": str(directory),
            "llmft.sweeper": str(sweeper).rsplit(".", 1)[-1],
            "llmft.command": shlex.join(redact_arguments(sys.argv)),
            "llmft.objective": f"{direction(config)} {config.task.objective}",
            "llmft.continues": ((previous or {}).get("mlflow") or {}).get("run_id"),
        }
    )
    parent.log_params({key: as_text(value) for key, value in sweep_definition(config).items()})
    log.info("MLflow parent run %s (%s) in %s", parent.run_id, name, uri)
    return {"tracking_uri": uri, "experiment_id": experiment, "run_id": parent.run_id}


def finish_sweep(config: DictConfig) -> list[RunRow]:
    """Print and save the table of jobs and the comparison plot; close the parent run. Returns the rows."""
    directory = sweep_dir(config)
    record = read_sweep(directory) or {}
    rows = sweep_rows(directory, record.get("sweep_id"))
    objective = measured_objective(rows, config.task.objective)
    print(
        format_table(rows, f"Sweep {directory} ({record.get('direction', 'minimize')} {objective}):"),
        flush=True,
    )
    write_csv(rows, directory / SUMMARY_CSV)
    plot_comparison(rows, directory / SUMMARY_PLOT, title=str(directory), objective_name=objective)
    if record.get("mlflow"):
        _close_parent(record, directory, rows)
    return rows


def _best_params(directory: Path, rows: list[RunRow], best: RunRow | None) -> dict[str, object]:
    """Optuna's verdict over the whole study when it wrote one; else the best job's overrides."""
    results = directory / OPTUNA_RESULTS
    if results.exists():
        return dict(OmegaConf.to_container(OmegaConf.load(results)).get("best_params") or {})
    if best is None:
        return {}
    return {key: best.overrides[key] for key in varying_keys(rows) if key in best.overrides}


def _close_parent(record: dict, directory: Path, rows: list[RunRow]) -> None:
    info = record["mlflow"]
    parent = MlflowRun(mlflow_store.client(info["tracking_uri"]), info["run_id"], info["tracking_uri"])
    best = best_row(rows, record.get("direction", "minimize"))
    failed = [row for row in rows if row.status != "FINISHED"]
    parent.log_metrics({"jobs_finished": len(rows) - len(failed), "jobs_failed": len(failed)}, step=0)
    if best is not None:
        parent.log_metrics({"best_objective": best.objective}, step=0)
        parent.set_tags({"llmft.best_job": best.name, "llmft.best_run_id": best.run_id})
    parent.log_params(
        {f"best.{key}": as_text(value) for key, value in _best_params(directory, rows, best).items()}
    )
    for name in (SUMMARY_CSV, SUMMARY_PLOT, OPTUNA_RESULTS, "multirun.yaml"):
        if (directory / name).exists():
            parent.client.log_artifact(parent.run_id, str(directory / name))
    parent.client.set_terminated(parent.run_id, status="FAILED" if failed or not rows else "FINISHED")
