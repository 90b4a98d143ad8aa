"""Compare runs: the sweep summary table (and optionally its CSV and plot) for a sweep dir or an MLflow experiment.

python run.py task=compare                                        # experiment logger.experiment_name
python -m llmft.track.compare multirun/2026-11-30/12-00-00        # the jobs of a sweep dir
python -m llmft.track.compare llmft                               # experiment 'llmft' in outputs/mlflow.db
python -m llmft.track.compare llmft --parent <run id>             # the children of one sweep parent run
python -m llmft.track.compare llmft --tracking-uri http://127.0.0.1:5000 --csv runs.csv --plot runs.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from omegaconf import DictConfig

from llmft.config.run_dir import JOB_FILE
from llmft.track import mlflow_store
from llmft.track.summary import (
    RunRow,
    format_table,
    measured_objective,
    mlflow_rows,
    plot_comparison,
    sweep_rows,
    write_csv,
)
from llmft.track.sweep import SUMMARY_CSV, SUMMARY_PLOT, SWEEP_FILE, read_sweep


def is_sweep_dir(path: Path) -> bool:
    return path.is_dir() and ((path / SWEEP_FILE).exists() or any(path.rglob(JOB_FILE)))


def rows_from_sweep_dir(directory: Path) -> list[RunRow]:
    """The latest sweep run in this dir (all jobs when it has no sweep.json)."""
    record = read_sweep(directory) or {}
    return sweep_rows(directory, record.get("sweep_id"))


def rows_from_mlflow(
    experiment: str,
    tracking_uri: str | None = None,
    parent: str | None = None,
    curves: bool = False,
    objective: str | None = None,
) -> list[RunRow]:
    uri = mlflow_store.tracking_uri(tracking_uri)
    client = mlflow_store.client(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        names = ", ".join(e.name for e in client.search_experiments()) or "none"
        raise SystemExit(f"No MLflow experiment named {experiment!r} in {uri}. Experiments there: {names}.")
    return mlflow_rows(
        client, [found.experiment_id], parent_run_id=parent, curves=curves, objective=objective
    )


def compare_task(cfg: DictConfig, run_dir: Path) -> None:
    """`python run.py task=compare`: the runs of logger.experiment_name, table printed, CSV and plot in run_dir."""
    rows = rows_from_mlflow(
        cfg.logger.experiment_name, cfg.logger.tracking_uri, curves=True, objective=cfg.task.objective
    )
    objective = measured_objective(rows, cfg.task.objective)
    print(
        format_table(
            rows,
            f"MLflow experiment {cfg.logger.experiment_name!r} ({len(rows)} runs; objective: {objective}):",
        )
    )
    write_csv(rows, Path(run_dir) / SUMMARY_CSV)
    plot_comparison(
        rows, Path(run_dir) / SUMMARY_PLOT, title=cfg.logger.experiment_name, objective_name=objective
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llmft.track.compare", description=__doc__.split("\n")[0])
    parser.add_argument(
        "source", nargs="?", default="llmft", help="a sweep dir, or an MLflow experiment name"
    )
    parser.add_argument(
        "--tracking-uri", help="MLflow store (default: $MLFLOW_TRACKING_URI, else outputs/mlflow.db)"
    )
    parser.add_argument("--parent", help="only the child runs of this MLflow (sweep parent) run id")
    parser.add_argument("--csv", type=Path, help="also write the table as CSV here")
    parser.add_argument("--plot", type=Path, help="also draw the comparison plot here (PNG)")
    args = parser.parse_args(argv)

    objective = "eval_loss"  # llmft's default task.objective
    if is_sweep_dir(Path(args.source)):
        rows = rows_from_sweep_dir(Path(args.source))
        objective = (read_sweep(Path(args.source)) or {}).get("objective", objective)
    else:
        rows = rows_from_mlflow(args.source, args.tracking_uri, args.parent, curves=args.plot is not None)
    if not rows:
        print(f"No runs found in {args.source}.")
        return 1
    objective = measured_objective(rows, objective)
    print(format_table(rows, f"{args.source} ({len(rows)} runs; objective: {objective}):"))
    if args.csv:
        write_csv(rows, args.csv)
    if args.plot:
        plot_comparison(rows, args.plot, title=args.source, objective_name=objective)
    return 0


if __name__ == "__main__":
    sys.exit(main())
