"""The runs of the MLflow experiment: a sortable table, loss curves and params side by side, UI links."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlparse

from llmft.track import mlflow_store

KEY_PARAMS = (
    "model.name_or_path",
    "method.stage",
    "method.finetuning_type",
    "method.learning_rate",
    "method.max_steps",
)
KEY_METRICS = ("train_loss", "eval_loss", "train_runtime")
RUN_DIR_TAG = "llmft.run_dir"
MLFLOW_UI_PORT = 5000  # where `mlflow ui` listens by default


def _client(tracking_uri: str | None):
    uri = mlflow_store.tracking_uri(tracking_uri)
    return mlflow_store.client(uri), uri


def experiment_runs(experiment: str, tracking_uri: str | None = None) -> list:
    """The experiment's runs (sweep parents left out), newest first; [] when the experiment does not exist."""
    client, _ = _client(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    runs = client.search_runs([found.experiment_id], order_by=["attributes.start_time DESC"])
    return [run for run in runs if run.data.tags.get("llmft.sweep") != "true"]


def table(runs: list) -> list[dict]:
    """One row per run: name, status, start, duration, key params, final metrics, run id."""
    rows = []
    for run in runs:
        info, data = run.info, run.data
        ended = info.end_time or (datetime.now().timestamp() * 1000)
        row = {
            "run": info.run_name,
            "status": info.status,
            "task": data.tags.get("llmft.task", ""),
            "started": datetime.fromtimestamp(info.start_time / 1000).strftime("%Y-%m-%d %H:%M:%S"),
            "duration_s": round((ended - info.start_time) / 1000, 1),
        }
        row.update({key.split(".")[-1]: data.params.get(key, "") for key in KEY_PARAMS})
        row.update({key: round(data.metrics[key], 4) if key in data.metrics else None for key in KEY_METRICS})
        row["run_id"] = info.run_id
        rows.append(row)
    return rows


def loss_curves(run_ids: list[str], tracking_uri: str | None = None) -> list[dict]:
    """Rows {step, value, curve} of every chosen run's loss (and eval loss), for one plot."""
    client, _ = _client(tracking_uri)
    rows = []
    for run_id in run_ids:
        name = client.get_run(run_id).info.run_name
        for key in ("loss", "eval_loss"):
            history = sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)
            rows += [{"step": m.step, "value": m.value, "curve": f"{name} {key}"} for m in history]
    return rows


def params_side_by_side(run_ids: list[str], tracking_uri: str | None = None) -> list[dict]:
    """One row per param that differs between the runs (every param for a single run), a column per run."""
    client, _ = _client(tracking_uri)
    runs = [client.get_run(run_id) for run_id in run_ids]
    names = [run.info.run_name for run in runs]
    keys = sorted({key for run in runs for key in run.data.params})
    rows = []
    for key in keys:
        values = [run.data.params.get(key, "") for run in runs]
        if len(runs) == 1 or len(set(values)) > 1:
            rows.append({"param": key, **dict(zip(names, values, strict=True))})
    return rows


def run_dir_of(run_id: str, tracking_uri: str | None = None) -> str | None:
    client, _ = _client(tracking_uri)
    return client.get_run(run_id).data.tags.get(RUN_DIR_TAG)


def forget_run(run_id: str, tracking_uri: str | None = None) -> None:
    """Mark the run deleted in MLflow (its record goes to the trash, like `mlflow runs delete`)."""
    client, _ = _client(tracking_uri)
    client.delete_run(run_id)


def ui_link(run_id: str, tracking_uri: str | None = None) -> tuple[str, str | None]:
    """(the run's page in the MLflow UI, the command that starts that UI, for a local store)."""
    client, uri = _client(tracking_uri)
    experiment_id = client.get_run(run_id).info.experiment_id
    page = f"#/experiments/{experiment_id}/runs/{run_id}"
    server = urlparse(uri)
    if server.scheme in ("http", "https"):  # without any user:password@ the URI holds
        port = f":{server.port}" if server.port else ""
        return f"{server.scheme}://{server.hostname}{port}{server.path.rstrip('/')}/{page}", None
    return f"http://127.0.0.1:{MLFLOW_UI_PORT}/{page}", f"mlflow ui --backend-store-uri {uri}"
