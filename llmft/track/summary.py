"""A table of runs (overrides, objective, key metrics, status) and a comparison plot.

Rows come from a sweep dir on disk (each job's job_status.json, metrics.json, trainer_log.jsonl)
or from an MLflow experiment; both print, save (CSV) and plot the same way.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from llmft.config.run_dir import JOB_FILE
from llmft.track.mlflow_run import recorded_run_id
from llmft.track.run_files import loss_series, read_log, read_metrics

KEY_METRICS = ("train_loss", "eval_loss", "train_tokens_per_second", "train_runtime")
SHORT_NAMES = {"train_tokens_per_second": "tokens/s", "train_runtime": "runtime_s"}


@dataclass
class RunRow:
    name: str  # the job number in a sweep, the run name in an experiment
    status: str  # FINISHED | FAILED | KILLED | RUNNING
    overrides: dict[str, str] = field(default_factory=dict)
    objective: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    run_id: str | None = None  # MLflow run, when one recorded it
    loss: tuple[list[int], list[float]] = ((), ())  # (steps, values) of the training loss


def parse_overrides(overrides: list[str]) -> dict[str, str]:
    """['method.lora_rank=8', '+x=1'] -> {'method.lora_rank': '8', 'x': '1'}; deletions (~key) are left out."""
    parsed = {}
    for override in overrides:
        key, _, value = override.partition("=")
        if not key.startswith("~"):
            parsed[key.lstrip("+")] = value
    return parsed


def best_row(rows: list[RunRow], direction: str = "minimize") -> RunRow | None:
    scored = [row for row in rows if row.status == "FINISHED" and _finite(row.objective)]
    if not scored:
        return None
    pick = max if direction == "maximize" else min
    return pick(scored, key=lambda row: row.objective)


def measured_objective(rows: list[RunRow], name: str) -> str:
    """The objective's name, or train_loss when no run measured it (what llmft.train returns then)."""
    return name if not rows or any(name in row.metrics for row in rows) else "train_loss"


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


# --- rows from a sweep dir ---------------------------------------------------------------------


def job_row(job_dir: Path) -> RunRow:
    status = json.loads((job_dir / JOB_FILE).read_text())
    return RunRow(
        name=str(status.get("job_num", job_dir.name)),
        status=status["status"],
        overrides=parse_overrides(status.get("overrides", [])),
        objective=status.get("objective"),
        metrics=read_metrics(job_dir),
        error=status.get("error"),
        run_id=recorded_run_id(job_dir),
        loss=loss_series(read_log(job_dir), "loss"),
    )


def sweep_rows(sweep_dir: Path, sweep_id: str | None = None) -> list[RunRow]:
    """One row per job of the sweep (only this sweep's jobs when sweep_id is given), in job order."""
    rows = []
    for status_file in Path(sweep_dir).rglob(JOB_FILE):
        if sweep_id is None or json.loads(status_file.read_text()).get("sweep_id") == sweep_id:
            rows.append(job_row(status_file.parent))
    return sorted(rows, key=lambda row: (len(row.name), row.name))


# --- rows from MLflow ----------------------------------------------------------------------------


def mlflow_rows(
    client,
    experiment_ids: list[str],
    parent_run_id: str | None = None,
    curves: bool = False,
    objective: str | None = None,
) -> list[RunRow]:
    """The runs of some experiments (sweep parents left out), or the children of one parent run.

    objective: the metric shown as each run's objective; default: the run's own task.objective.
    """
    query = f"tags.mlflow.parentRunId = '{parent_run_id}'" if parent_run_id else ""
    runs = client.search_runs(experiment_ids, filter_string=query, order_by=["attributes.start_time ASC"])
    rows = []
    for run in runs:
        if run.data.tags.get("llmft.sweep") == "true":
            continue
        metrics = dict(run.data.metrics)
        objective_name = objective or run.data.params.get("task.objective", "eval_loss")
        loss = ((), ())
        if curves:
            history = sorted(client.get_metric_history(run.info.run_id, "loss"), key=lambda m: m.step)
            loss = ([m.step for m in history], [m.value for m in history])
        rows.append(
            RunRow(
                name=run.info.run_name or run.info.run_id,
                status=run.info.status,
                overrides=parse_overrides(run.data.tags.get("llmft.overrides", "").split()),
                objective=metrics.get(objective_name, metrics.get("train_loss")),
                metrics={key: metrics[key] for key in KEY_METRICS if key in metrics},
                error=run.data.tags.get("llmft.error"),
                run_id=run.info.run_id,
                loss=loss,
            )
        )
    return rows


# --- output --------------------------------------------------------------------------------------


def varying_keys(rows: list[RunRow]) -> list[str]:
    """Override keys whose value differs between rows (all of them for a single row)."""
    keys = sorted({key for row in rows for key in row.overrides})
    if len(rows) < 2:
        return keys
    return [key for key in keys if len({row.overrides.get(key) for row in rows}) > 1]


def columns(rows: list[RunRow]) -> list[str]:
    metrics = [key for key in KEY_METRICS if any(key in row.metrics for row in rows)]
    return ["job", "status", *varying_keys(rows), "objective", *metrics]


def _cell(row: RunRow, column: str) -> object:
    if column == "job":
        return row.name
    if column == "status":
        return row.status
    if column == "objective":
        return row.objective
    if column in row.overrides:
        return row.overrides[column]
    return row.metrics.get(column)


def _show(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.5g}"
    return str(value)


def format_table(rows: list[RunRow], title: str = "") -> str:
    header = columns(rows)
    cells = [[_show(_cell(row, column)) for column in header] for row in rows]
    names = [SHORT_NAMES.get(column, column) for column in header]
    widths = [max(len(text) for text in column) for column in zip(names, *cells, strict=False)]
    lines = [title] if title else []
    lines.append("  ".join(name.ljust(width) for name, width in zip(names, widths, strict=True)))
    lines += [
        "  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)) for line in cells
    ]
    lines += [f"job {row.name} failed: {row.error}" for row in rows if row.error]
    return "\n".join(lines)


def write_csv(rows: list[RunRow], path: Path) -> Path:
    """The table's columns plus each run's full overrides, MLflow run id and error."""
    header = [*columns(rows), "overrides", "run_id", "error"]
    with Path(path).open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(header)
        for row in rows:
            extra = {
                "overrides": " ".join(f"{key}={value}" for key, value in row.overrides.items()),
                "run_id": row.run_id,
                "error": row.error,
            }
            values = [extra[column] if column in extra else _cell(row, column) for column in header]
            writer.writerow(["" if value is None else value for value in values])
    return Path(path)


def read_csv(path: Path) -> list[dict[str, str]]:
    with Path(path).open(newline="") as stream:
        return list(csv.DictReader(stream))


def _short(value: str | None) -> str:
    """Optuna's 2.9375384576328295e-05 as 2.938e-05 in plot labels."""
    try:
        return f"{float(value):.4g}" if value and "." in value else str(value)
    except ValueError:
        return str(value)


def _label(row: RunRow, keys: list[str]) -> str:
    return " ".join(
        [row.name, *(f"{key.rsplit('.', 1)[-1]}={_short(row.overrides.get(key))}" for key in keys)]
    )


def plot_comparison(
    rows: list[RunRow], path: Path, title: str = "", objective_name: str = "objective"
) -> Path:
    """Left: the objective of each run (failed runs marked); right: every run's loss curve on one chart."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    keys = varying_keys(rows)
    figure, (points, curves) = plt.subplots(1, 2, figsize=(13, 4.5), dpi=110)
    labels = [_label(row, keys) for row in rows]
    for index, row in enumerate(rows):
        if row.status == "FINISHED" and _finite(row.objective):
            points.plot(index, row.objective, "o", color="tab:blue")
            points.annotate(
                f"{row.objective:.4g}",
                (index, row.objective),
                textcoords="offset points",
                xytext=(0, 6),
                ha="center",
                fontsize=8,
            )
        else:
            points.annotate(
                row.status,
                (index, 0.5),
                xycoords=("data", "axes fraction"),
                ha="center",
                color="tab:red",
                rotation=90,
            )
    points.set_xlim(-0.5, len(rows) - 0.5)
    points.set_xticks(range(len(rows)), labels, rotation=30, ha="right", fontsize=8)
    points.ticklabel_format(axis="y", useOffset=False)
    points.set_ylabel(objective_name)
    points.set_title(f"{objective_name} per run")
    points.grid(alpha=0.3)
    for row, label in zip(rows, labels, strict=True):
        if row.loss[0]:
            curves.plot(row.loss[0], row.loss[1], marker=".", label=label)
    curves.xaxis.set_major_locator(MaxNLocator(integer=True))
    curves.set_xlabel("step")
    curves.set_ylabel("training loss")
    curves.set_title("loss curves")
    curves.grid(alpha=0.3)
    if any(row.loss[0] for row in rows):
        curves.legend(fontsize=7)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return Path(path)
