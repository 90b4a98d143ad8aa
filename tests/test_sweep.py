"""Multiruns: one MLflow parent run with a child per job, failing jobs, Optuna, the sweep summary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import compose, run_cli
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from llmft.main import run
from llmft.track import compare
from llmft.track.summary import read_csv

QUICK = ("method.max_steps=3", "method.logging_steps=1", "data.max_samples=20", "method.save_steps=100")
pytestmark = pytest.mark.slow


def multirun(sweep_dir: Path, store: Path, *overrides: str):
    return run_cli(
        "-m",
        *QUICK,
        *overrides,
        f"hydra.sweep.dir={sweep_dir}",
        f"logger.tracking_uri=sqlite:///{store}",
        timeout=900,
    )


def parent_and_children(client: MlflowClient, experiment: str = "llmft"):
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    runs = client.search_runs([experiment_id])
    parents = [run for run in runs if run.data.tags.get("llmft.sweep") == "true"]
    assert len(parents) == 1, [run.info.run_name for run in parents]
    children = [run for run in runs if run.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    return parents[0], children


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    """The example grid (experiments/sweep/lr_x_rank.yaml): learning rate 1e-4,3e-4 x LoRA rank 8,16."""
    root = tmp_path_factory.mktemp("grid")
    result = multirun(root / "sweep", root / "mlflow.db", "+sweep=lr_x_rank")
    assert result.returncode == 0, result.stderr[-4000:]
    return root / "sweep", MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}"), result


def test_a_grid_sweep_is_one_parent_run_with_a_child_per_job(grid):
    sweep_dir, client, _ = grid
    parent, children = parent_and_children(client)
    assert parent.info.status == "FINISHED"
    assert parent.data.params["method.learning_rate"] == "1e-4,3e-4"
    assert parent.data.params["method.lora_rank"] == "8,16"
    assert [child.info.status for child in children] == ["FINISHED"] * 4
    grid_points = {
        (float(c.data.params["method.learning_rate"]), c.data.params["method.lora_rank"]) for c in children
    }
    assert grid_points == {(1e-4, "8"), (1e-4, "16"), (3e-4, "8"), (3e-4, "16")}
    for child in children:
        assert child.data.params["method.lora_alpha"] == child.data.params["method.lora_rank"]
        assert Path(child.data.tags["llmft.run_dir"]).parent == sweep_dir.resolve()
        assert len(client.get_metric_history(child.info.run_id, "loss")) == 3


def test_the_sweep_summary_matches_mlflow(grid, capsys):
    sweep_dir, client, result = grid
    parent, _ = parent_and_children(client)
    rows = read_csv(sweep_dir / "summary.csv")
    assert [row["job"] for row in rows] == ["0", "1", "2", "3"]
    for row in rows:
        child = client.get_run(row["run_id"])
        assert row["status"] == child.info.status == "FINISHED"
        assert float(row["method.learning_rate"]) == float(child.data.params["method.learning_rate"])
        assert row["method.lora_rank"] == child.data.params["method.lora_rank"]
        assert float(row["objective"]) == pytest.approx(child.data.metrics["eval_loss"])
        for metric in ("train_loss", "eval_loss", "train_tokens_per_second"):
            assert float(row[metric]) == pytest.approx(child.data.metrics[metric]), metric
    best = min(float(row["objective"]) for row in rows)
    assert parent.data.metrics["best_objective"] == pytest.approx(best)
    assert (sweep_dir / "summary.png").read_bytes()[:4] == b"\x89PNG"
    assert {"summary.csv", "summary.png"} <= {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert result.stdout.count("FINISHED") >= 4 and "method.lora_rank" in result.stdout

    store = f"sqlite:///{sweep_dir.parent / 'mlflow.db'}"
    assert compare.main(["llmft", "--tracking-uri", store, "--parent", parent.info.run_id]) == 0
    table = capsys.readouterr().out
    for row in rows:
        assert f"{float(row['objective']):.5g}" in table
    assert compare.main([str(sweep_dir)]) == 0
    assert capsys.readouterr().out.count("FINISHED") == 4


def test_task_compare_tabulates_an_mlflow_experiment(grid, tmp_path, capsys):
    sweep_dir, _, _ = grid
    run(
        compose("task=compare", f"logger.tracking_uri=sqlite:///{sweep_dir.parent / 'mlflow.db'}"),
        run_dir=tmp_path,
    )
    compared = read_csv(tmp_path / "summary.csv")
    in_sweep = read_csv(sweep_dir / "summary.csv")
    assert sorted(row["run_id"] for row in compared) == sorted(
        row["run_id"] for row in in_sweep
    )  # no parent row
    objectives = {row["run_id"]: float(row["objective"]) for row in in_sweep}
    for row in compared:
        assert float(row["objective"]) == pytest.approx(objectives[row["run_id"]])
    assert (tmp_path / "summary.png").exists()
    assert "MLflow experiment 'llmft' (4 runs" in capsys.readouterr().out


def test_a_failing_job_is_recorded_failed_and_the_others_finish(tmp_path):
    result = multirun(
        tmp_path / "sweep", tmp_path / "mlflow.db", "method.lora_target=[no_such_module],[q_proj]"
    )
    assert result.returncode == 1
    assert "1 of 2 jobs failed (job 0)" in result.stderr
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    parent, children = parent_and_children(client)
    by_target = {child.data.params["method.lora_target"]: child for child in children}
    assert by_target['["q_proj"]'].info.status == "FINISHED"
    failed = by_target['["no_such_module"]']
    assert failed.info.status == "FAILED"
    assert "no_such_module" in failed.data.tags["llmft.error"]
    assert "error.txt" in {a.path for a in client.list_artifacts(failed.info.run_id)}
    assert parent.info.status == "FAILED" and parent.data.metrics["jobs_failed"] == 1
    assert [row["status"] for row in read_csv(tmp_path / "sweep" / "summary.csv")] == ["FAILED", "FINISHED"]


@pytest.mark.filterwarnings("ignore:LogUniformDistribution:FutureWarning")
def test_an_optuna_search_writes_best_params_and_a_rerun_continues_the_study(tmp_path):
    pytest.importorskip(
        "hydra_plugins.hydra_optuna_sweeper", reason="make setup installs hydra-optuna-sweeper"
    )
    import optuna

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    search = (
        "+sweep=optuna_lr_rank",
        "hydra.sweeper.n_trials=2",
        f"hydra.sweeper.storage={storage}",
        "hydra.sweeper.study_name=test-study",
    )
    first = multirun(tmp_path / "first", tmp_path / "mlflow.db", *search)
    assert first.returncode == 0, first.stderr[-4000:]
    results = OmegaConf.load(tmp_path / "first" / "optimization_results.yaml")
    assert set(results.best_params) == {"method.learning_rate", "method.lora_rank"}
    assert len(optuna.load_study(study_name="test-study", storage=storage).trials) == 2
    parent, children = parent_and_children(MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}"))
    assert len(children) == 2
    assert (
        float(parent.data.params["best.method.learning_rate"]) == results.best_params["method.learning_rate"]
    )
    assert parent.data.metrics["best_objective"] == pytest.approx(results.best_value)

    second = multirun(tmp_path / "second", tmp_path / "mlflow2.db", *search)
    assert second.returncode == 0, second.stderr[-4000:]
    trials = optuna.load_study(study_name="test-study", storage=storage).trials
    assert len(trials) == 4
    assert len({trial.params["method.learning_rate"] for trial in trials}) == 4  # new trials, not a replay
    assert json.loads((tmp_path / "second" / "sweep.json").read_text())["direction"] == "minimize"


def test_a_job_failing_at_compose_time_is_recorded_failed_with_its_message(tmp_path):
    """Both jobs stop at llmft's config check, before any MLflow run of theirs opened."""
    result = multirun(
        tmp_path / "sweep", tmp_path / "mlflow.db", "method=full_sft", "quantization=bnb_4bit,bnb_8bit"
    )
    assert result.returncode == 1
    assert "2 of 2 jobs failed (job 0, 1)" in result.stderr
    parent, children = parent_and_children(MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}"))
    assert parent.info.status == "FAILED" and parent.data.metrics["jobs_failed"] == 2
    assert sorted(child.data.params["quantization.method"] for child in children) == ["bnb_4bit", "bnb_8bit"]
    for child in children:
        assert child.info.status == "FAILED"
        assert (
            "ConfigError" in child.data.tags["llmft.error"] and "needs LoRA" in child.data.tags["llmft.error"]
        )
    for job in ("0", "1"):
        status = json.loads((tmp_path / "sweep" / job / "job_status.json").read_text())
        assert status["status"] == "FAILED" and "needs LoRA" in status["error"]


def test_a_killed_sweep_rerun_closes_the_old_parent_skips_finished_jobs_and_finishes_the_rest(tmp_path):
    from kill_at_step import run_killed

    sweep_dir, store = tmp_path / "sweep", f"sqlite:///{tmp_path / 'mlflow.db'}"
    command = (
        "-m",
        "seed=1,2,3,4",
        "method.max_steps=4",
        "method.save_steps=2",
        "method.logging_steps=1",
        "data.max_samples=20",
        f"hydra.sweep.dir={sweep_dir}",
        f"logger.tracking_uri={store}",
    )
    killed = run_killed(sweep_dir / "2", 3, *command)  # job 2 of 4, after its checkpoint at step 2
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert not (sweep_dir / "2" / "job_status.json").exists() and not (sweep_dir / "3").exists()
    finished_logs = {job: (sweep_dir / job / "trainer_log.jsonl").read_text() for job in ("0", "1")}

    rerun = run_cli(*command, timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-4000:]
    assert "Job 0 skipped" in rerun.stdout and "Job 1 skipped" in rerun.stdout
    assert {job: (sweep_dir / job / "trainer_log.jsonl").read_text() for job in ("0", "1")} == finished_logs
    assert [row["status"] for row in read_csv(sweep_dir / "summary.csv")] == ["FINISHED"] * 4
    assert [r["step"] for r in json_lines(sweep_dir / "2" / "trainer_log.jsonl") if "loss" in r] == [
        1,
        2,
        3,
        4,
    ]

    client = MlflowClient(tracking_uri=store)
    runs = client.search_runs([client.get_experiment_by_name("llmft").experiment_id])
    parents = {run.info.status: run for run in runs if run.data.tags.get("llmft.sweep") == "true"}
    assert set(parents) == {"KILLED", "FINISHED"}
    old, new = parents["KILLED"], parents["FINISHED"]
    assert new.data.tags["llmft.continues"] == old.info.run_id
    assert new.data.metrics["jobs_finished"] == 4

    def jobs_of(parent) -> dict[str, str]:
        children = [run for run in runs if run.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
        return {run.data.tags["llmft.sweep_job"]: run.info.status for run in children}

    assert jobs_of(old) == {"0": "FINISHED", "1": "FINISHED", "2": "KILLED"}
    assert jobs_of(new) == {"2": "FINISHED", "3": "FINISHED"}
    job2 = next(
        run
        for run in runs
        if run.data.tags.get("mlflow.parentRunId") == new.info.run_id
        and run.data.tags["llmft.sweep_job"] == "2"
    )
    # job 2 resumed from its checkpoint at step 2
    assert [m.step for m in client.get_metric_history(job2.info.run_id, "loss")] == [3, 4]


def json_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_sweep_stopped_by_hydras_own_override_check_leaves_its_parent_failed(tmp_path):
    result = multirun(tmp_path / "sweep", tmp_path / "mlflow.db", "method.lora_rank=8,eight")
    assert result.returncode == 2
    assert "method.lora_rank' expects integer, got 'eight'" in result.stderr
    parent, children = parent_and_children(MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}"))
    assert parent.info.status == "FAILED" and children == []
