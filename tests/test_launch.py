"""hardware presets, their validation, the torchrun command, the worker's view of the saved config."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from pathlib import Path

import pytest
from conftest import ROOT, compose
from omegaconf import OmegaConf

from llmft.config.compose import compose as compose_config
from llmft.config.errors import ConfigError
from llmft.launch.torchrun import torchrun_command
from llmft.launch.world import LaunchError, processes_per_node
from llmft.main import check, run
from llmft.train.arguments import distributed_training_arguments

PRESETS = sorted(path.stem for path in (ROOT / "conf" / "hardware").glob("*.yaml"))


def problems(*overrides: str) -> str:
    with pytest.raises(ConfigError) as error:
        check(compose(*overrides))
    return str(error.value)


def test_every_scale_out_preset_is_shipped():
    assert set(PRESETS) >= {
        "auto",
        "cpu",
        "gpu",
        "multi_gpu",
        "fsdp",
        "deepspeed_z2",
        "deepspeed_z3",
        "deepspeed_z3_offload",
        "multi_node",
        "slurm",
        "slurm_multi_node",
    }


@pytest.mark.parametrize("preset", ["auto", "cpu", "gpu", "multi_gpu", "fsdp", "slurm", "slurm_multi_node"])
def test_presets_compose_and_validate(preset):
    check(compose(f"hardware={preset}"))


def test_deepspeed_without_the_package_is_rejected_at_compose_time():
    import importlib.util

    if importlib.util.find_spec("deepspeed") is not None:
        pytest.skip("deepspeed is installed here")
    message = problems("hardware=deepspeed_z3")
    assert "pip install deepspeed" in message and "hardware=fsdp" in message


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (("hardware=fsdp", "quantization=bnb_8bit"), "cannot shard quantization=bnb_8bit"),
        (("hardware=fsdp", "hardware.device=cpu"), "shards over GPUs only"),
        (("hardware=fsdp", "method.pissa_init=true"), "pissa_init=true cannot be saved from sharded weights"),
        (("hardware=multi_gpu", "hardware.nnodes=2"), "needs the rank-0 node's address"),
        (("hardware=multi_gpu", "hardware.device=cpu", "hardware.backend=nccl"), "use backend=gloo"),
        (("hardware=multi_gpu", "hardware.device=cpu"), "nproc_per_node=auto counts GPUs"),
        (("hardware.nproc_per_node=0",), "must be a positive integer or auto"),
        (("hardware.strategy=dp",), "hardware.strategy='dp' is not one of: ddp, fsdp, deepspeed"),
        (("hardware=slurm", "hardware.nproc_per_node=auto"), "cannot size a Slurm job"),
        (("hardware=deepspeed_z2", "hardware.deepspeed_config=nope.json"), "'nope.json' does not exist"),
    ],
)
def test_impossible_hardware_combinations_fail_with_the_fix(overrides, expected):
    assert expected in problems(*overrides)


def test_multi_node_reads_the_rendezvous_from_the_environment(monkeypatch, tmp_path):
    for name, value in {
        "NNODES": "2",
        "NODE_RANK": "1",
        "MASTER_ADDR": "10.0.0.7",
        "MASTER_PORT": "29511",
    }.items():
        monkeypatch.setenv(name, value)
    hardware = compose("hardware=multi_node").hardware
    assert (hardware.nnodes, hardware.node_rank, hardware.master_addr, hardware.master_port) == (
        2,
        1,
        "10.0.0.7",
        29511,
    )
    command = torchrun_command(hardware, 8, tmp_path)
    assert {"--nnodes=2", "--node-rank=1", "--master-addr=10.0.0.7", "--master-port=29511"} <= set(command)
    assert command[-3:] == ["-m", "llmft.launch.worker", str(tmp_path.resolve())]


def test_one_node_uses_a_standalone_rendezvous(tmp_path):
    hardware = compose("hardware=multi_gpu", "hardware.nproc_per_node=2").hardware
    command = torchrun_command(hardware, 2, tmp_path)
    assert command[1:4] == ["-m", "torch.distributed.run", "--nproc-per-node=2"]
    assert "--standalone" in command and not any(arg.startswith("--master") for arg in command)


def test_more_processes_than_gpus_is_refused_at_launch(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(LaunchError, match="more processes than the 2 GPU"):
        processes_per_node(compose("hardware=multi_gpu", "hardware.nproc_per_node=4").hardware)
    assert processes_per_node(compose("hardware=multi_gpu").hardware) == 2


def test_gpu_hardware_without_a_gpu_says_how_to_run_on_the_cpu(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    with pytest.raises(LaunchError, match="hardware.backend=gloo hardware.nproc_per_node=2"):
        processes_per_node(compose("hardware=multi_gpu").hardware)
    with pytest.raises(LaunchError, match="hardware.device=cuda .* but no CUDA GPU is visible"):
        processes_per_node(compose("hardware=fsdp", "hardware.nproc_per_node=2").hardware)
    assert processes_per_node(compose("hardware=multi_gpu", "hardware.nproc_per_node=2").hardware) == 2


def test_fsdp_maps_onto_transformers_fsdp2_and_takes_over_gradient_checkpointing(tmp_path):
    from transformers import TrainingArguments

    cfg = compose("hardware=fsdp", "hardware.fsdp_cpu_offload=true", "method.gradient_checkpointing=true")
    arguments = distributed_training_arguments(cfg.hardware, cfg.method.gradient_checkpointing)
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, **arguments)
    assert args.fsdp is True and args.gradient_checkpointing is False
    plugin = args.fsdp_plugin_args
    assert plugin["fsdp_version"] == 2 and plugin["activation_checkpointing"] is True
    assert plugin["cpu_offload"] is True and plugin["state_dict_type"] == "FULL_STATE_DICT"


def test_ddp_backend_and_deepspeed_config_reach_the_training_arguments():
    gloo = compose("hardware=multi_gpu", "hardware.backend=gloo").hardware
    assert distributed_training_arguments(gloo, False)["ddp_backend"] == "gloo"
    deepspeed = compose("hardware=deepspeed_z3_offload").hardware
    path = Path(distributed_training_arguments(deepspeed, False)["deepspeed"])
    config = json.loads(path.read_text())
    assert config["zero_optimization"]["stage"] == 3
    assert config["zero_optimization"]["offload_param"]["device"] == "cpu"
    assert config["train_micro_batch_size_per_gpu"] == "auto"  # transformers fills it from the method


@pytest.mark.parametrize(("name", "stage"), [("zero2", 2), ("zero3", 3), ("zero3_offload", 3)])
def test_shipped_deepspeed_configs_leave_the_batch_and_precision_to_transformers(name, stage):
    config = json.loads((ROOT / "conf" / "hardware" / "deepspeed" / f"{name}.json").read_text())
    assert config["zero_optimization"]["stage"] == stage
    assert config["bf16"]["enabled"] == config["gradient_accumulation_steps"] == "auto"


def test_slurm_preset_without_multirun_says_to_add_m(tmp_path):
    with pytest.raises(LaunchError, match=r"add -m \(python run.py -m hardware=slurm"):
        run(compose("hardware=slurm", "logger=none"), run_dir=tmp_path)


def test_slurm_knobs_are_set_in_one_place():
    cfg = compose_config(
        [
            "hardware=slurm",
            "hardware.nproc_per_node=4",
            "hardware.slurm.partition=gpu",
            "hardware.slurm.timeout_min=30",
            "hardware.slurm.setup=[module load cuda]",
        ],
        with_hydra=True,
    )
    launcher = cfg.hydra.launcher
    assert (launcher.tasks_per_node, launcher.partition, launcher.timeout_min) == (4, "gpu", 30)
    assert list(launcher.setup) == ["module load cuda"]
    assert launcher._target_.endswith("SlurmLauncher")


@pytest.fixture
def hydra_config_restored():
    from hydra.core.hydra_config import HydraConfig

    saved = HydraConfig.instance().cfg
    yield
    HydraConfig.instance().cfg = saved


def test_the_worker_gets_the_parents_config_with_its_secrets_and_hydra_job(tmp_path, hydra_config_restored):
    from hydra.core.hydra_config import HydraConfig

    from llmft.launch.torchrun import WORKER_CONFIG_ENV, worker_environment
    from llmft.launch.worker import load_parent_config

    full = compose_config(["seed=7", "task.api_key=sk-real"], with_hydra=True)
    (tmp_path / ".hydra").mkdir()
    job = OmegaConf.masked_copy(full, [key for key in full if key != "hydra"])
    record = OmegaConf.merge(job, {"task": {"api_key": "***"}})  # what RedactSecrets leaves on disk
    OmegaConf.save(record, tmp_path / ".hydra" / "config.yaml")
    OmegaConf.save(OmegaConf.masked_copy(full, "hydra"), tmp_path / ".hydra" / "hydra.yaml")

    loaded = load_parent_config(tmp_path, worker_environment(job)[WORKER_CONFIG_ENV])
    assert loaded.seed == 7 and OmegaConf.to_container(loaded) == OmegaConf.to_container(job)
    assert loaded.task.api_key == "sk-real"  # the workers run with the secret, the record keeps it hidden
    assert list(HydraConfig.get().overrides.task) == ["seed=7", "task.api_key=sk-real"]


def test_the_parent_passes_on_the_workers_output_and_exit_code(capfd):
    from llmft.launch.torchrun import run_workers

    code = run_workers([sys.executable, "-c", "print('rank 0 says hi'); raise SystemExit(3)"])
    assert code == 3 and "rank 0 says hi" in capfd.readouterr().out


def test_a_sigterm_to_the_parent_reaches_the_workers():
    from llmft.launch.torchrun import run_workers

    child = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *_: sys.exit(7))\n"
        "print('ready', flush=True)\n"
        "time.sleep(30)\n"
    )
    threading.Timer(3.0, os.kill, (os.getpid(), signal.SIGTERM)).start()
    assert run_workers([sys.executable, "-c", child]) == 7


@pytest.mark.parametrize("trainer_loop", [True, False])
def test_a_preemption_warning_waits_for_the_trainer_or_requeues_at_once(monkeypatch, trainer_loop):
    """With a Trainer loop the warning is noted for its next step end; without one (ppo, eval) the
    job is handed to submitit's requeue straight away instead of being killed at the time limit."""

    from llmft.train import preemption

    requeued = []
    previous = signal.signal(signal.SIGUSR2, lambda signum, frame: requeued.append(signum))  # submitit's
    states = (
        ("listening", trainer_loop),
        ("requested", False),
        ("submitit_handler", None),
        ("installed", False),
    )
    for name, value in states:
        monkeypatch.setattr(preemption.PreemptionState, name, value)
    try:
        preemption.install_preemption_handler()
        os.kill(os.getpid(), signal.SIGUSR2)
    finally:
        signal.signal(signal.SIGUSR2, previous)
    assert preemption.PreemptionState.requested is trainer_loop
    assert requeued == ([] if trainer_loop else [signal.SIGUSR2])
