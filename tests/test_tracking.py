"""Experiment tracking: what a run records in MLflow (a real server and the embedded store), TensorBoard,
and that no secret reaches MLflow, env.json or Hydra's records."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import ROOT, compose, run_cli
from mlflow.tracking import MlflowClient

from llmft.checks.validate import validate
from llmft.config.errors import ConfigError
from llmft.track.hydra_callbacks import redact_yaml_file
from llmft.track.mlflow_run import run_name
from llmft.track.mlflow_store import tracking_uri
from llmft.track.params import config_params
from llmft.track.reporters import require_tracker_packages
from llmft.track.run_files import loss_series, read_log, read_metrics
from llmft.track.secrets import (
    REDACTED,
    RedactingFilter,
    is_secret_key,
    redact_arguments,
    redact_text,
    redact_tree,
)

SECRET = "sk-planted-fake-secret-4242"
QUICK = (
    "method.max_steps=4",
    "method.logging_steps=1",
    "method.eval_steps=2",
    "data.max_samples=24",
    "data.val_size=4",
    "method.save_steps=100",
)


# --- secrets and params (no training) --------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "task.api_key",
        "hf_token",
        "WANDB_API_KEY",
        "db.password",
        "client_secret",
        "aws_secret_access_key",
        "auth_token",
        "+model.token",
    ],
)
def test_secret_looking_keys_are_recognised(key):
    assert is_secret_key(key)


@pytest.mark.parametrize(
    "key",
    [
        "model.tokenizer",
        "max_new_tokens",
        "pad_token",
        "eos_token",
        "train_tokens",
        "method.lora_rank",
        "author",
    ],
)
def test_ordinary_keys_are_not_secrets(key):
    assert not is_secret_key(key)


def test_command_lines_and_urls_lose_their_secrets():
    argv = [
        "run.py",
        f"task.api_key={SECRET}",
        "method.lora_rank=8",
        f"logger.tracking_uri=http://bob:{SECRET}@host:5000",
    ]
    redacted = " ".join(redact_arguments(argv))
    assert SECRET not in redacted
    assert (
        "task.api_key=***" in redacted
        and "method.lora_rank=8" in redacted
        and "http://bob:***@host:5000" in redacted
    )


def test_env_interpolations_are_kept_since_they_are_not_the_secret():
    tree = {"task": {"api_key": "${oc.env:LLMFT_API_KEY}", "token": SECRET, "port": 8000}}
    assert redact_tree(tree) == {
        "task": {"api_key": "${oc.env:LLMFT_API_KEY}", "token": REDACTED, "port": 8000}
    }


def test_url_query_tokens_and_hydra_escaped_urls_lose_their_secrets():
    text = redact_text(
        f"https://host/api?access_token={SECRET}&page=2 logger.tracking_uri=http\\://bob\\:{SECRET}@host\\:5000"
    )
    assert SECRET not in text
    assert "access_token=***" in text and "http\\://bob\\:***@host" in text


def test_log_lines_and_tracebacks_lose_their_secrets():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("llmft.test.redaction")
    logger.addHandler(handler)
    try:
        logger.warning("#0 : task.api_key=%s seed=1", SECRET)
        try:
            raise ConnectionError(f"cannot reach http://bob:{SECRET}@host")
        except ConnectionError:
            logger.exception("tracking failed")
    finally:
        logger.removeHandler(handler)
    logged = stream.getvalue()
    assert SECRET not in logged
    assert (
        "task.api_key=*** seed=1" in logged and "ConnectionError: cannot reach http://bob:***@host" in logged
    )


def test_uri_credentials_go_to_mlflows_auth_variables_not_into_the_uri(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    assert (
        tracking_uri(f"https://bob:{SECRET}@mlflow.example.com:5000/x") == "https://mlflow.example.com:5000/x"
    )
    assert (
        os.environ["MLFLOW_TRACKING_USERNAME"] == "bob" and os.environ["MLFLOW_TRACKING_PASSWORD"] == SECRET
    )


def test_values_read_from_the_environment_are_recorded_as_their_interpolation(monkeypatch):
    monkeypatch.setenv("LLMFT_TEST_HUB_ID", SECRET)
    params = config_params(compose("task.export_hub_model_id=${oc.env:LLMFT_TEST_HUB_ID}"))
    assert params["task.export_hub_model_id"] == "${oc.env:LLMFT_TEST_HUB_ID}"


def test_params_are_the_flattened_config_without_secrets():
    params = config_params(compose(f"task.api_key={SECRET}", "method.lora_rank=16"))
    assert params["method.lora_rank"] == "16"
    assert params["task.api_key"] == REDACTED
    assert json.loads(params["model.lora_target"])[0] == "q_proj"
    assert not any(SECRET in value for value in params.values())


def test_hydra_yaml_records_are_redacted_in_place(tmp_path):
    record = tmp_path / "overrides.yaml"
    record.write_text(f"- task.api_key={SECRET}\n- method.lora_rank=8\n- task.token=${{oc.env:TOKEN}}\n")
    redact_yaml_file(record)
    assert record.read_text().splitlines() == [
        "- task.api_key=***",
        "- method.lora_rank=8",
        "- task.token=${oc.env:TOKEN}",
    ]


def test_run_names_are_readable_and_follow_the_config():
    default = run_name(compose())
    assert default.startswith("tiny-llama-lora_sft-demo_sft-") and len(default.rsplit("-", 1)[1]) == 6
    assert run_name(compose("method.learning_rate=5e-4")) != default
    assert run_name(compose("logger.run_name=baseline")) == "baseline"


def test_tracking_uri_defaults_to_a_sqlite_store_under_outputs(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking_uri(None) == f"sqlite:///{tmp_path.resolve()}/outputs/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking_uri(None) == "http://127.0.0.1:5000"
    assert tracking_uri("sqlite:////x/mlflow.db") == "sqlite:////x/mlflow.db"


def test_logger_presets_compose_alone_and_together():
    assert compose().logger.mlflow  # the default
    both = compose("logger=[mlflow,tensorboard]").logger
    assert both.mlflow and both.tensorboard and not both.wandb
    assert not compose("logger=none").logger.mlflow


def test_a_file_store_uri_is_rejected_with_the_fix():
    with pytest.raises(ConfigError, match=r"logger.tracking_uri='./mlruns'.*sqlite:///"):
        validate(compose("logger.tracking_uri=./mlruns"))


def test_wandb_without_its_package_says_how_to_install_it(monkeypatch):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real_find_spec(name, *a)
    )
    with pytest.raises(RuntimeError, match="pip install wandb"):
        require_tracker_packages(compose("logger=wandb").logger)
    require_tracker_packages(compose("logger=[mlflow,tensorboard]").logger)


def test_an_unknown_wandb_mode_is_a_config_error():
    with pytest.raises(ConfigError, match="logger.wandb_mode='sometimes'"):
        validate(compose("logger=wandb", "logger.wandb_mode=sometimes"))


# --- a real MLflow server -----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """`mlflow server` on 127.0.0.1 with a sqlite backend, in its own process group (it forks helpers)."""
    root = tmp_path_factory.mktemp("mlflow-server")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{root}/mlflow.db",
            "--artifacts-destination",
            str(root / "artifacts"),
        ],
        cwd=root,
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        stdout=(root / "server.log").open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        while not _healthy(url):
            assert server.poll() is None, (root / "server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "mlflow server did not answer /health in 90 s"
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def only_run(client: MlflowClient, experiment: str):
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no experiment {experiment!r}"
    runs = client.search_runs([found.experiment_id])
    assert len(runs) == 1, [r.info.run_name for r in runs]
    return runs[0]


def assert_run_recorded(client: MlflowClient, run, run_dir: Path) -> None:
    """Params, per-step metric history, tags and artifacts of a finished run match its run dir."""
    assert run.info.status == "FINISHED"
    assert run.info.run_name.startswith("tiny-llama-lora_sft-demo_sft-")
    params = run.data.params
    assert params["method.max_steps"] == "4" and params["data.val_size"] == "4.0"
    assert params["model.name_or_path"] == "tiny-llama"

    records = read_log(run_dir)
    logged_steps, logged_losses = loss_series(records, "loss")
    assert logged_steps == [1, 2, 3, 4]
    history = sorted(client.get_metric_history(run.info.run_id, "loss"), key=lambda m: m.step)
    assert [m.step for m in history] == logged_steps
    assert [m.value for m in history] == pytest.approx(logged_losses)
    for per_step in ("learning_rate", "grad_norm", "tokens_per_second"):
        assert [m.step for m in client.get_metric_history(run.info.run_id, per_step)] == logged_steps, (
            per_step
        )
    assert [m.step for m in client.get_metric_history(run.info.run_id, "eval_loss")][:2] == [2, 4]
    final = read_metrics(run_dir)
    for key in ("train_loss", "eval_loss", "train_tokens_per_second"):
        assert run.data.metrics[key] == pytest.approx(final[key]), key

    tags = run.data.tags
    env = json.loads((run_dir / "env.json").read_text())
    assert "method.max_steps=4" in tags["llmft.overrides"]
    assert "run.py" in tags["llmft.command"] and tags["llmft.run_dir"] == str(run_dir.resolve())
    assert tags.get("mlflow.source.git.commit") == env["git"]["commit"]
    assert tags["version.transformers"] == env["packages"]["transformers"]
    assert tags["hardware.cuda"] in ("True", "False")

    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "trainer_log.jsonl", "metrics.json", "loss.png", "env.json", "hydra"} <= artifacts
    config_text = Path(
        client.download_artifacts(run.info.run_id, "config.yaml", str(run_dir / "download"))
    ).read_text()
    assert "lora_rank: 8" in config_text


def assert_no_secret_anywhere(client: MlflowClient, run, run_dir: Path) -> None:
    assert run.data.params["task.api_key"] == REDACTED
    assert not [k for k, v in run.data.params.items() if SECRET in v]
    assert not [k for k, v in run.data.tags.items() if SECRET in v]
    for path in [run_dir / "env.json", *(run_dir / ".hydra").glob("*.yaml")]:
        assert SECRET not in path.read_text(), path
    hydra_config = Path(client.download_artifacts(run.info.run_id, "hydra/config.yaml", str(run_dir / "dl2")))
    assert SECRET not in hydra_config.read_text()


@pytest.mark.slow
def test_a_run_against_an_mlflow_server_records_everything_but_secrets(mlflow_server, tmp_path):
    run_dir = tmp_path / "run"
    result = run_cli(
        *QUICK,
        f"hydra.run.dir={run_dir}",
        f"logger.tracking_uri={mlflow_server}",
        "logger.experiment_name=server-test",
        f"task.api_key={SECRET}",
        "logger.log_model=true",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(tracking_uri=mlflow_server)
    run = only_run(client, "server-test")
    assert_run_recorded(client, run, run_dir)
    assert_no_secret_anywhere(client, run, run_dir)
    adapter = {a.path for a in client.list_artifacts(run.info.run_id, "adapter")}
    assert "adapter/adapter_model.safetensors" in adapter


def every_artifact_text(client: MlflowClient, run_id: str, into: Path) -> str:
    local = Path(client.download_artifacts(run_id, "", str(into)))
    return "".join(
        path.read_bytes().decode("utf-8", "replace") for path in local.rglob("*") if path.is_file()
    )


@pytest.mark.slow
def test_planted_secrets_reach_no_file_mlflow_record_or_output_of_a_multirun(mlflow_server, tmp_path):
    """A password in the tracking URI and an API key read from the environment, in a 2-job sweep."""
    uri_password, env_key = "uri-pass-planted-7731", "env-key-planted-5519"
    sweep_dir = tmp_path / "sweep"
    result = run_cli(
        "-m",
        *QUICK,
        "seed=1,2",
        f"hydra.sweep.dir={sweep_dir}",
        f"logger.tracking_uri=http://alice:{uri_password}@{mlflow_server.split('://')[1]}",
        "logger.experiment_name=secrets-test",
        "task.api_key=${oc.env:LLMFT_PLANTED_KEY}",
        env={"LLMFT_PLANTED_KEY": env_key},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    planted = (uri_password, env_key)
    output = result.stdout + result.stderr
    echo = [line for line in output.splitlines() if "#1 : " in line]  # the launcher's job echo
    assert echo and "seed=2" in echo[0] and "alice\\:***@" in echo[0], echo  # Hydra escapes the colon
    assert not [secret for secret in planted if secret in output]

    files = [path for path in sweep_dir.rglob("*") if path.is_file()]
    assert {"sweep.json", "multirun.yaml", "mlflow_run.json", "run.log", "config.yaml"} <= {
        p.name for p in files
    }
    leaks = [str(path) for path in files for secret in planted if secret.encode() in path.read_bytes()]
    assert not leaks

    client = MlflowClient(tracking_uri=mlflow_server)
    experiment = client.get_experiment_by_name("secrets-test").experiment_id
    runs = client.search_runs([experiment])
    assert len(runs) == 3  # the sweep's parent and a child per job
    for run in runs:
        records = [*run.data.params.values(), *run.data.tags.values()]
        records.append(every_artifact_text(client, run.info.run_id, tmp_path / "artifacts" / run.info.run_id))
        assert not [secret for secret in planted for text in records if secret in text], run.info.run_name
    children = [run for run in runs if "mlflow.parentRunId" in run.data.tags]
    # a value read from the environment is recorded as where it came from
    assert [run.data.params["task.api_key"] for run in children] == ["${oc.env:LLMFT_PLANTED_KEY}"] * 2


@pytest.mark.slow
def test_the_submitit_launcher_echoes_and_keeps_no_secret(tmp_path):
    """Its job echo is redacted; its pickles (each job's overrides and config) go when the sweep ends."""
    sweep_dir = tmp_path / "sweep"
    result = run_cli(  # two jobs that stop at the config check: quick, and the launcher still ran them
        "-m",
        "hydra/launcher=submitit_local",
        "method=full_sft",
        "quantization=bnb_4bit,bnb_8bit",
        f"task.api_key={SECRET}",
        "logger=none",
        f"hydra.sweep.dir={sweep_dir}",
    )
    assert "2 of 2 jobs failed" in result.stderr, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert "#1 : method=full_sft quantization=bnb_8bit task.api_key=***" in output
    assert SECRET not in output
    files = [path for path in sweep_dir.rglob("*") if path.is_file()]
    assert [path.name for path in files if path.name.endswith("_log.out")]  # submitit's job logs stay
    assert not [str(path) for path in files if SECRET.encode() in path.read_bytes()]


# --- the embedded store, and TensorBoard beside it ------------------------------------------------------


@pytest.mark.slow
def test_the_embedded_store_and_tensorboard_need_no_server(tmp_path):
    """Run from another working directory with no tracking settings: the store appears in ./outputs."""
    run_dir = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "run.py"),
            *QUICK,
            f"hydra.run.dir={run_dir}",
            "logger=[mlflow,tensorboard]",
            f"task.api_key={SECRET}",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    store = tmp_path / "outputs" / "mlflow.db"
    assert store.exists()
    client = MlflowClient(tracking_uri=f"sqlite:///{store}")
    run = only_run(client, "llmft")
    assert_run_recorded(client, run, run_dir)
    assert_no_secret_anywhere(client, run, run_dir)
    artifact_dir = tmp_path / "outputs" / "mlartifacts" / "llmft" / run.info.run_id / "artifacts"
    assert (artifact_dir / "trainer_log.jsonl").read_text() == (run_dir / "trainer_log.jsonl").read_text()

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tensorboard")).Reload()
    steps, losses = loss_series(read_log(run_dir), "loss")
    scalars = events.Scalars("train/loss")
    assert [s.step for s in scalars] == steps
    assert [s.value for s in scalars] == pytest.approx(losses, rel=1e-5)


def test_a_resumed_run_dir_continues_its_mlflow_run(tmp_path):
    """Rerunning in the same run dir resumes from the checkpoint, and MLflow keeps one run for it."""
    from llmft.main import run

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    common = (
        "method.logging_steps=1",
        "method.save_steps=2",
        "data.max_samples=16",
        f"logger.tracking_uri={store}",
    )
    run(compose("method.max_steps=2", *common), run_dir=tmp_path / "run")
    run(compose("method.max_steps=4", *common), run_dir=tmp_path / "run")
    client = MlflowClient(tracking_uri=store)
    resumed = only_run(client, "llmft")
    assert resumed.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(resumed.info.run_id, "loss")] == [1, 2, 3, 4]


def test_wandb_offline_records_every_logged_loss_without_an_api_key(tmp_path, monkeypatch):
    """logger=wandb works with no account: an offline run in the run dir, one history row per logged loss."""
    from llmft.main import run

    for variable in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_DIR", "WANDB_PROJECT"):
        monkeypatch.delenv(variable, raising=False)  # also restores what the run sets, afterwards
    run(compose(*QUICK, "logger=wandb"), run_dir=tmp_path)
    import wandb

    assert wandb.run is None  # closed: the next job of a multirun in this process gets a run of its own
    # finish() only tells W&B's service process the run is over; the service closes (flushes) the run
    # file afterwards, so reading it now raced that write (CI once saw only the 7-byte header).
    # Shutting the service down waits for it, as it does at every process exit.
    wandb.teardown()

    [offline_run] = (tmp_path / "wandb").glob("offline-run-*/run-*.wandb")
    steps, _ = loss_series(read_log(tmp_path), "loss")
    # The .wandb file is a sequence of protobuf records; each history row names its keys in plain bytes.
    assert offline_run.read_bytes().count(b"train/loss") >= len(steps) > 0


def swanlab_scalars(run_file: Path, key: str) -> list[tuple[int, float]]:
    """(step, value) of every `key` record in a SwanLab offline run file, read with SwanLab's own reader."""
    from swanlab.proto.swanlab.record.v1.record_pb2 import Record
    from swanlab.sdk.internal.core_python.store import DataStoreReader

    reader, scalars = DataStoreReader(), []
    reader.open(run_file)
    for data in reader:
        record = Record()
        record.ParseFromString(data)
        if record.HasField("scalar") and record.scalar.key == key:
            scalars.append((record.scalar.step, record.scalar.value.number))
    return scalars


def test_swanlab_offline_records_every_logged_loss_without_an_api_key(tmp_path, monkeypatch):
    """logger=swanlab works with no account: an offline run under the run dir holding every logged loss."""
    from llmft.main import run

    for variable in ("SWANLAB_API_KEY", "SWANLAB_MODE", "SWANLAB_LOG_DIR", "SWANLAB_PROJECT"):
        monkeypatch.delenv(variable, raising=False)  # also restores what the run sets, afterwards
    run(compose(*QUICK, "logger=swanlab"), run_dir=tmp_path)

    [run_file] = (tmp_path / "swanlog").glob("run-*/run-*.swanlab")
    steps, losses = loss_series(read_log(tmp_path), "loss")
    recorded = swanlab_scalars(run_file, "train/loss")
    assert [step for step, _ in recorded] == steps and len(steps) == 4
    assert [loss for _, loss in recorded] == pytest.approx(losses)
    import swanlab

    assert not swanlab.has_run()  # closed: the next job of a multirun in this process gets a run of its own


def test_swanlab_without_its_package_says_how_to_install_it(monkeypatch):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "swanlab" else real_find_spec(name, *a)
    )
    with pytest.raises(RuntimeError, match=r"pip install swanlab \(or pip install -e .\[swanlab\]\)"):
        require_tracker_packages(compose("logger=swanlab").logger)
