"""CPU DDP through the one command: 2 torchrun workers on gloo, started by `python run.py` itself."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import run_cli

pytestmark = pytest.mark.slow
STEPS = 4
COMMON = (f"method.max_steps={STEPS}", "method.logging_steps=1", "logger=none", "data.max_samples=64")
CPU_DDP = ("hardware=multi_gpu", "hardware.device=cpu", "hardware.backend=gloo", "hardware.nproc_per_node=2")


def logged(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "trainer_log.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module", autouse=True)
def tiny_model_built():
    """Build the tiny model before both runs: a first-use build draws from the seeded RNG and would
    give the cold run other LoRA initial weights than the warm one."""
    from conftest import compose

    from llmft.model.tiny import ensure_tiny_model

    ensure_tiny_model(compose().model.tiny)


def test_cpu_ddp_is_one_run_dir_with_identical_replicas_and_the_single_process_loss(tmp_path):
    ddp_dir, single_dir = tmp_path / "ddp", tmp_path / "single"
    # the same global batch: 2 processes x 2 samples, and 1 process x 4 samples
    ddp = run_cli(*CPU_DDP, "method.per_device_train_batch_size=2", f"hydra.run.dir={ddp_dir}", *COMMON)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    single = run_cli(
        "hardware=cpu", "method.per_device_train_batch_size=4", f"hydra.run.dir={single_dir}", *COMMON
    )
    assert single.returncode == 0, single.stderr[-3000:]

    assert "torch.distributed.run --nproc-per-node=2" in ddp.stdout + ddp.stderr
    assert set(re.findall(r"Run directory: (\S+)", ddp.stdout)) == {str(ddp_dir.resolve())}
    assert sorted(path.name for path in tmp_path.iterdir()) == ["ddp", "single"]
    assert (ddp_dir / "adapter" / "adapter_model.safetensors").exists()

    replicas = json.loads((ddp_dir / "replicas.json").read_text())
    assert [replica["rank"] for replica in replicas] == [0, 1]
    assert {replica["global_step"] for replica in replicas} == {STEPS}
    assert len({replica["trainable_sha256"] for replica in replicas}) == 1

    ddp_losses = [record["loss"] for record in logged(ddp_dir) if "loss" in record]
    single_losses = [record["loss"] for record in logged(single_dir) if "loss" in record]
    assert len(ddp_losses) == STEPS  # rank 0 alone writes the log: no step twice
    assert ddp_losses == pytest.approx(single_losses, rel=1e-4)
    assert ddp_losses[-1] < ddp_losses[0]


def _finish_training_as_rank(rank: int, init_file: str, run_dir: str, errors) -> None:
    """One rank of a real 2-process gloo world ending training with its own (seeded) weights."""
    import torch
    import torch.distributed as dist
    from transformers import TrainerState

    from llmft.train.callbacks import ReplicaRecord

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        torch.manual_seed(rank)  # rank 1's weights differ from rank 0's
        model = torch.nn.Linear(4, 2)
        state = TrainerState(global_step=7, is_world_process_zero=rank == 0)
        ReplicaRecord(Path(run_dir)).on_train_end(None, state, None, model=model)
        errors.put((rank, None))
    except Exception as error:  # noqa: BLE001 - handed to the test
        errors.put((rank, f"{type(error).__name__}: {error}"))
    finally:
        dist.destroy_process_group()


def test_ddp_replicas_that_disagree_fail_the_run_naming_rank_step_and_digests(tmp_path):
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    errors = context.Queue()
    ranks = [
        context.Process(
            target=_finish_training_as_rank, args=(r, str(tmp_path / "init"), str(tmp_path), errors)
        )
        for r in (0, 1)
    ]
    for process in ranks:
        process.start()
    outcome = dict(errors.get(timeout=120) for _ in ranks)
    for process in ranks:
        process.join(timeout=60)

    replicas = json.loads((tmp_path / "replicas.json").read_text())
    digests = [replica["trainable_sha256"] for replica in replicas]
    assert digests[0] != digests[1]
    for rank in (0, 1):  # every rank stops, not only the one that writes the record
        message = outcome[rank]
        assert message.startswith("ReplicasDisagree: DDP replicas disagree"), message
        assert "rank 0 at step 7" in message and "rank 1 at step 7" in message
        assert digests[0][:16] in message and digests[1][:16] in message
        assert "replicas.json" in message
