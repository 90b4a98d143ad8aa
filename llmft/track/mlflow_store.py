"""Where MLflow records go: a tracking server, or the embedded sqlite store under outputs/.

MLflow 3 refuses its old file store (./mlruns), so the embedded default is a sqlite database,
`outputs/mlflow.db`, with artifacts beside it in `outputs/mlartifacts/<experiment>/`.
Open its UI with `mlflow ui --backend-store-uri sqlite:///outputs/mlflow.db`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from llmft.track.secrets import split_credentials

DEFAULT_STORE_DIR = "outputs"
DB_FILE = "mlflow.db"
ARTIFACTS_DIR = "mlartifacts"


def launch_dir() -> Path:
    """Where the command was started: Hydra's outputs/ and multirun/ are relative to it (even with hydra.job.chdir)."""
    from hydra.core.hydra_config import HydraConfig

    return Path(HydraConfig.get().runtime.cwd) if HydraConfig.initialized() else Path.cwd()


def default_tracking_uri() -> str:
    store = (launch_dir() / DEFAULT_STORE_DIR).resolve()
    return f"sqlite:///{store / DB_FILE}"


def tracking_uri(configured: str | None) -> str:
    """logger.tracking_uri when set, else $MLFLOW_TRACKING_URI, else the embedded store under ./outputs.

    Credentials in the URI (`https://user:password@host`) move to MLflow's own basic-auth variables,
    MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD: the URI llmft and MLflow record and print
    (tags, mlflow_run.json, sweep.json, logs, MLflow's "View run at") then carries none.
    """
    uri, user, password = split_credentials(
        configured or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()
    )
    if password is not None:
        os.environ.update(MLFLOW_TRACKING_USERNAME=user or "", MLFLOW_TRACKING_PASSWORD=password)
    return uri


def _sqlite_path(uri: str) -> Path | None:
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///") :])


def prepare_store(uri: str) -> None:
    """sqlite cannot create the folder of its database file: make it."""
    path = _sqlite_path(uri)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)


def artifact_location(uri: str, experiment_name: str) -> str | None:
    """Artifacts of a local database live next to it; a server decides for itself (None)."""
    path = _sqlite_path(uri)
    if path is None:
        return None
    safe_name = re.sub(r"[^\w.\-]+", "_", experiment_name)
    return (path.parent / ARTIFACTS_DIR / safe_name).resolve().as_uri()


def client(uri: str):
    from mlflow.tracking import MlflowClient

    prepare_store(uri)
    return MlflowClient(tracking_uri=uri)


def experiment_id(mlflow_client, uri: str, name: str) -> str:
    """The id of experiment `name`, created (with our artifact location) on first use."""
    from mlflow.exceptions import MlflowException

    experiment = mlflow_client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    try:
        return mlflow_client.create_experiment(name, artifact_location=artifact_location(uri, name))
    except MlflowException:  # another job of the sweep created it in the meantime
        return mlflow_client.get_experiment_by_name(name).experiment_id
