"""The kto stage: desirable replies gain log-ratio over undesirable ones; LoRA needs no reference copy;
and `python run.py method=lora_kto` works from the command line."""

from __future__ import annotations

import json

import pytest
from conftest import compose, run_cli
from test_stage_data import pairs_dataset, write_pairs

from llmft.track.run_files import read_log
from llmft.train.fit import fit_and_save
from llmft.train.kto import build_kto_trainer

QUICK = ("logger=none", "method.logging_steps=2", "method.eval_steps=1000", "method.save_steps=1000")


def test_kto_separates_desirable_from_undesirable_replies(tmp_path):
    data = pairs_dataset(write_pairs(tmp_path / "pairs.json", 40))  # pairs, split into labelled rows
    cfg = compose(
        "method=lora_kto",
        *data,
        *QUICK,
        "method.max_steps=10",
        "method.learning_rate=3e-2",
        "data.val_size=8",
    )
    trainer = build_kto_trainer(cfg, tmp_path)
    assert trainer.ref_model is None and list(trainer.model.peft_config) == ["default"]

    metrics = fit_and_save(trainer, tmp_path, "lora", "kto")

    margins = [record["rewards/margins"] for record in read_log(tmp_path) if "rewards/margins" in record]
    assert abs(margins[0]) < 1e-3 and margins[-1] > 1.0, margins
    assert metrics["eval_rewards/chosen"] > metrics["eval_rewards/rejected"], metrics
    assert "kl" in json.loads((tmp_path / "trainer_log.jsonl").read_text().splitlines()[0])


@pytest.mark.slow
def test_python_run_py_trains_kto_into_a_complete_run_dir(tmp_path):
    result = run_cli(
        f"hydra.run.dir={tmp_path}",
        "method=lora_kto",
        "dataset=demo_kto",
        "data.max_samples=8",
        "method.max_steps=2",
        "method.logging_steps=1",
        "logger=none",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for name in (
        ".hydra/config.yaml",
        "trainer_log.jsonl",
        "metrics.json",
        "loss.png",
        "env.json",
        "adapter/adapter_config.json",
    ):
        assert (tmp_path / name).exists(), name
    assert "rewards/chosen" in (tmp_path / "metrics.json").read_text() or any(
        "rewards/chosen" in record for record in read_log(tmp_path)
    )
