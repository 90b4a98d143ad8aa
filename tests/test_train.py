"""Training end to end on the tiny model: the run directory contract, finetuning types, checkpoints.

Killing and resuming a run: tests/test_resume.py.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
from conftest import compose, run_cli
from safetensors.torch import load_file

from llmft.config.run_dir import COMPLETE_MARKER, last_checkpoint
from llmft.main import run
from llmft.track.run_files import loss_series, read_log

RUN_DIR_CONTRACT = (".hydra", "trainer_log.jsonl", "metrics.json", "loss.png", "env.json")
QUICK = ("method.max_steps=12", "method.logging_steps=2", "method.save_steps=100", "data.max_samples=64")


def train(run_dir: Path, *overrides: str) -> dict:
    run(compose(*QUICK, *overrides), run_dir=run_dir)
    return json.loads((run_dir / "metrics.json").read_text())


@pytest.mark.slow
def test_python_run_py_trains_the_default_end_to_end(tmp_path):
    result = run_cli(f"hydra.run.dir={tmp_path}", "logger=[mlflow,tensorboard]")  # MLflow store: conftest
    assert result.returncode == 0, result.stderr[-3000:]
    for name in (*RUN_DIR_CONTRACT, "adapter/adapter_config.json", "tensorboard", "mlflow_run.json"):
        assert (tmp_path / name).exists(), name
    _, losses = loss_series(read_log(tmp_path))
    assert losses[-1] < 0.7 * losses[0], losses
    assert f"Run directory: {tmp_path}" in result.stdout
    assert "Loss:" in result.stdout and "tokens/s" in result.stdout
    env = json.loads((tmp_path / "env.json").read_text())
    assert env["packages"]["transformers"] and "commit" in env["git"]


def test_lora_run_saves_an_adapter_and_an_eval_loss(tmp_path):
    metrics = train(tmp_path, "method=lora_sft", "data.val_size=0.2", "logger=none")
    assert {"train_loss", "eval_loss", "train_tokens_per_second"} <= set(metrics)
    assert (tmp_path / "adapter" / "adapter_model.safetensors").exists()
    assert not (tmp_path / "model").exists()
    assert (tmp_path / "adapter" / "chat_template.jinja").exists() or "chat_template" in (
        tmp_path / "adapter" / "tokenizer_config.json"
    ).read_text()
    assert any("eval_loss" in record for record in read_log(tmp_path))


def test_a_lora_run_prints_no_deprecation_warnings(tmp_path):
    """transformers 5 renamed gradient checkpointing: llmft passes the new name, and the warning PEFT
    causes by reading the old one is not the user's to see on every run."""
    with warnings.catch_warnings(record=True) as caught:
        train(tmp_path, "method=lora_sft", "logger=none")
    assert not [str(warning.message) for warning in caught if issubclass(warning.category, FutureWarning)]


def base_weights(model_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(next(model_dir.glob("*.safetensors"))))


def test_freeze_run_changes_only_the_last_layer(tmp_path):
    from llmft.model.loader import resolve_model_path

    cfg = compose("method=freeze_sft")
    before = base_weights(Path(resolve_model_path(cfg.model)))
    train(tmp_path, "method=freeze_sft", "method.learning_rate=1e-2", "logger=none")
    after = base_weights(tmp_path / "model")
    last = cfg.model.tiny.num_hidden_layers - 1
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed, "nothing trained"
    assert all(f"layers.{last}." in name for name in changed), changed


def test_full_run_changes_every_layer(tmp_path):
    from llmft.model.loader import resolve_model_path

    cfg = compose("method=full_sft")
    before = base_weights(Path(resolve_model_path(cfg.model)))
    train(tmp_path, "method=full_sft", "logger=none")
    after = base_weights(tmp_path / "model")
    for layer in range(cfg.model.tiny.num_hidden_layers):
        name = next(n for n in before if f"layers.{layer}.mlp.down_proj" in n)
        assert not torch.equal(before[name], after[name]), name


def test_a_checkpoint_cut_off_mid_save_is_skipped(tmp_path):
    for step, complete in ((10, True), (20, True), (30, False)):
        checkpoint = tmp_path / "checkpoints" / f"checkpoint-{step}"
        checkpoint.mkdir(parents=True)
        if complete:
            (checkpoint / COMPLETE_MARKER).write_text("{}")
    assert last_checkpoint(tmp_path) == str(tmp_path / "checkpoints" / "checkpoint-20")
