"""A run killed (SIGKILL) after a checkpoint and rerun equals the uninterrupted run: the same steps, the
same loss at every step after the checkpoint, bitwise the same adapter (CPU), for sft, dpo and ppo."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import compose
from kill_at_step import run_killed
from safetensors.torch import load_file

from llmft.config.run_dir import last_checkpoint
from llmft.main import run
from llmft.track.run_files import read_log

SAVE_STEP, KILL_STEP, MAX_STEPS = 4, 6, 8
COMMON = (
    f"method.max_steps={MAX_STEPS}",
    f"method.save_steps={SAVE_STEP}",
    "method.save_total_limit=null",
    "method.logging_steps=1",
    "data.max_samples=32",
    "hardware=cpu",
    "logger=none",
)
STAGES = {
    "sft": ("method=lora_sft",),
    "dpo": ("method=lora_dpo", "dataset=demo_dpo", "method.learning_rate=1e-3"),
    "ppo": (
        "method=lora_ppo",
        "method.learning_rate=1e-3",
        "method.max_completion_length=8",
        "method.per_device_train_batch_size=4",
        "method.mini_batch_size=2",
        "method.ppo_epochs=1",
    ),
}


@pytest.fixture(scope="module", autouse=True)
def tiny_model_built():
    """Build the tiny model before the runs: a first-use build draws from the seeded RNG."""
    from llmft.model.tiny import ensure_tiny_model

    ensure_tiny_model(compose().model.tiny)


def losses_by_step(run_dir: Path) -> dict[int, float]:
    steps = [record["step"] for record in read_log(run_dir) if "loss" in record]
    assert len(steps) == len(set(steps)), f"a step was logged twice: {steps}"
    return {record["step"]: record["loss"] for record in read_log(run_dir) if "loss" in record}


def adapter(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / "adapter" / "adapter_model.safetensors"))


@pytest.mark.slow
@pytest.mark.parametrize("stage", STAGES)
def test_a_run_killed_after_a_checkpoint_and_rerun_equals_the_uninterrupted_run(stage, tmp_path):
    overrides = (*STAGES[stage], *COMMON)
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    run(compose(*overrides), run_dir=whole)

    killed = run_killed(resumed, KILL_STEP, f"hydra.run.dir={resumed}", *overrides)
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert last_checkpoint(resumed) == str(resumed / "checkpoints" / f"checkpoint-{SAVE_STEP}")
    assert max(losses_by_step(resumed)) == KILL_STEP  # steps after the checkpoint were logged, then lost

    run(compose(*overrides), run_dir=resumed)

    expected, got = losses_by_step(whole), losses_by_step(resumed)
    assert list(got) == list(expected) == list(range(1, MAX_STEPS + 1))
    assert {s: got[s] for s in got if s > SAVE_STEP} == {s: expected[s] for s in expected if s > SAVE_STEP}
    final = json.loads(
        (resumed / "checkpoints" / f"checkpoint-{MAX_STEPS}" / "trainer_state.json").read_text()
    )
    assert final["global_step"] == MAX_STEPS
    weights, reference = adapter(resumed), adapter(whole)
    assert weights.keys() == reference.keys()
    difference = max((weights[name] - reference[name]).abs().max().item() for name in weights)
    print(f"{stage}: max abs adapter difference after resume = {difference}")
    assert all(torch.equal(weights[name], reference[name]) for name in weights), difference
