"""hardware=slurm on a real single-node Slurm (slurmctld, slurmd, slurmdbd on MariaDB, munged), started
from Debian packages by .ci/slurm/slurm-up.sh and stopped by pid file; and the dry run, which needs none."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import ROOT, run_cli

pytestmark = pytest.mark.slow
SLURM_SCRIPTS = ROOT / ".ci" / "slurm"
CANNOT_INSTALL = 3  # slurm-up.sh's exit code when the Debian packages cannot be installed here


@pytest.fixture(scope="module")
def slurm_env():
    """The environment that points Slurm's commands (and submitit) at a fresh cluster."""
    base = Path(tempfile.mkdtemp(prefix="llmft-slurm-"))  # not under pytest's 0700 tmp: munged runs as munge
    base.chmod(0o755)
    env = {**os.environ, "B": str(base)}
    try:
        up = subprocess.run(
            ["bash", str(SLURM_SCRIPTS / "slurm-up.sh")], env=env, capture_output=True, text=True, timeout=300
        )
        if up.returncode == CANNOT_INSTALL:
            pytest.skip(f"Slurm cannot be installed here (Debian packages via apt-get): {up.stderr[-300:]}")
        assert up.returncode == 0, f"slurm-up.sh failed:\n{up.stdout}\n{up.stderr}"
        yield {"SLURM_CONF": str(base / "slurm" / "slurm.conf")}
    finally:
        subprocess.run(
            ["bash", str(SLURM_SCRIPTS / "slurm-down.sh")], env=env, capture_output=True, timeout=120
        )
        shutil.rmtree(base, ignore_errors=True)


def final_states(job_id: str, env: dict, timeout: float = 60) -> dict[str, str]:
    """sacct's states once no task is pending or running (results come back before the tasks exit)."""
    deadline = time.monotonic() + timeout
    while (states := sacct_states(job_id, env)) and time.monotonic() < deadline:
        if not {"PENDING", "RUNNING", "COMPLETING"} & set(states.values()):
            break
        time.sleep(0.5)
    return states


def sacct_states(job_id: str, env: dict) -> dict[str, str]:
    out = subprocess.run(
        ["sacct", "-n", "-X", "-P", "-j", job_id, "-o", "JobID,State"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(line.split("|") for line in out.split())


def submitit_job_ids(sweep_dir: Path) -> list[str]:
    """Job ids with a submitit folder: `<id>` for a job, `<array id>_<index>` for array tasks."""
    return sorted(path.name for path in (sweep_dir / ".submitit").iterdir() if path.is_dir())


def test_a_sweep_runs_as_a_slurm_array_with_mlflow_child_runs(slurm_env, tmp_path):
    sweep_dir, store = tmp_path / "sweep", f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = run_cli(
        "-m",
        "hardware=slurm",
        "hardware.device=cpu",
        "seed=1,2",
        "method.max_steps=2",
        f"hydra.sweep.dir={sweep_dir}",
        f"logger.tracking_uri={store}",
        env=slurm_env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]

    array_tasks = [job for job in submitit_job_ids(sweep_dir) if "_" in job]
    assert [task.split("_")[1] for task in array_tasks] == ["0", "1"]  # <array id>_<task>: one array
    array_id = array_tasks[0].split("_")[0]
    assert final_states(array_id, slurm_env) == {task: "COMPLETED" for task in array_tasks}
    for job in ("0", "1"):
        assert (sweep_dir / job / "adapter" / "adapter_config.json").exists()
        assert json.loads((sweep_dir / job / "metrics.json").read_text())["train_loss"] > 0

    from mlflow.tracking import MlflowClient

    runs = MlflowClient(tracking_uri=store).search_runs(
        [experiment.experiment_id for experiment in MlflowClient(tracking_uri=store).search_experiments()]
    )
    parents = [run for run in runs if run.data.tags.get("llmft.sweep") == "true"]
    children = [run for run in runs if run.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(parents) == 1 and len(children) == 2
    assert {run.info.status for run in children} == {"FINISHED"}
    assert {run.data.tags["llmft.run_dir"] for run in children} == {
        str(sweep_dir / job) for job in ("0", "1")
    }


def wait_for_logged_steps(log_file: Path, steps: int, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if log_file.exists() and len(log_file.read_text().splitlines()) >= steps:
            return
        time.sleep(0.2)
    raise AssertionError(f"{log_file} did not reach {steps} steps (job output in the sweep's .submitit/)")


def test_a_two_task_job_joins_one_world_and_resumes_after_preemption(slurm_env, tmp_path):
    """2 Slurm tasks = 2 DDP ranks on gloo; a USR2 (what Slurm sends before the time limit, or on
    preemption) makes them checkpoint, submitit requeues the job, and the rerun finishes the steps."""
    steps, sweep_dir = 40, tmp_path / "sweep"
    command = [
        sys.executable,
        "run.py",
        "-m",
        "hardware=slurm",
        "hardware.device=cpu",
        "hardware.backend=gloo",
        "hardware.nproc_per_node=2",
        f"method.max_steps={steps}",
        "method.save_steps=1000",
        "method.logging_steps=1",
        "logger=none",
        f"hydra.sweep.dir={sweep_dir}",
    ]
    env = {**os.environ, **slurm_env}
    with subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as sweep:
        wait_for_logged_steps(sweep_dir / "0" / "trainer_log.jsonl", 2, sweep, timeout=240)
        (job_id,) = submitit_job_ids(sweep_dir)
        subprocess.run(["scancel", "--signal=USR2", job_id], env=env, check=True)
        output, _ = sweep.communicate(timeout=400)
    assert sweep.returncode == 0, output[-3000:]

    run_dir = sweep_dir / "0"
    saved_early = [int(path.name.split("-")[1]) for path in (run_dir / "checkpoints").glob("checkpoint-*")]
    assert any(step < steps for step in saved_early), f"no preemption checkpoint: {saved_early}"
    logged = [json.loads(line)["step"] for line in (run_dir / "trainer_log.jsonl").read_text().splitlines()]
    assert logged[:-1] == list(range(1, steps + 1))  # resumed: no step lost or repeated

    replicas = json.loads((run_dir / "replicas.json").read_text())
    assert [(r["rank"], r["global_step"]) for r in replicas] == [(0, steps), (1, steps)]
    assert replicas[0]["trainable_sha256"] == replicas[1]["trainable_sha256"]
    logs = {
        rank: "".join(p.read_text() for p in (sweep_dir / ".submitit" / job_id).glob(f"*_{rank}_log.*"))
        for rank in (0, 1)
    }
    assert "Slurm task 0 of 2 joins" in logs[0] and "Slurm task 1 of 2 joins" in logs[1]
    assert f"Requeued job {job_id}" in logs[0]
    assert final_states(job_id, slurm_env) == {job_id: "COMPLETED"}


def test_dry_run_prints_the_sbatch_script_and_submits_nothing(tmp_path):
    result = run_cli(
        "-m",
        "hardware=slurm",
        "hardware.slurm.dry_run=true",
        "hardware.nproc_per_node=2",
        "hardware.slurm.partition=gpu",
        "hardware.slurm.timeout_min=30",
        "hardware.slurm.mem_gb=16",
        "hardware.slurm.setup=[source .venv/bin/activate]",
        "seed=1,2",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    script = result.stdout
    for line in (
        "#SBATCH --array=0-1%2",
        "#SBATCH --ntasks-per-node=2",
        "#SBATCH --partition=gpu",
        "#SBATCH --time=30",
        "#SBATCH --mem=16GB",
        "#SBATCH --signal=USR2@120",
        "source .venv/bin/activate",
        "-m submitit.core._submit",
    ):
        assert line in script
    assert "# job 0:" in script and "seed=2" in script.split("# job 1:")[1]
    assert not (tmp_path / "sweep").exists()
