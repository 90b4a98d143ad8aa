"""The pt stage: plain text, packed by default, held-out perplexity that training lowers."""

from __future__ import annotations

import json
import math

import pytest
from conftest import compose

from llmft.data.pipeline import packing_enabled
from llmft.train.fit import fit_and_save
from llmft.train.pt import PretrainingTrainer
from llmft.train.sft import build_sft_trainer

QUICK = ("logger=none", "method.logging_steps=4", "method.eval_steps=1000", "method.save_steps=1000")


def test_pt_lowers_held_out_perplexity(tmp_path):
    cfg = compose(
        "method=lora_pt",
        "dataset=demo_pt",
        *QUICK,
        "data.max_samples=120",
        "data.val_size=20",
        "data.cutoff_len=128",
        "method.max_steps=16",
        "method.learning_rate=1e-2",
    )
    trainer = build_sft_trainer(cfg, tmp_path, trainer_class=PretrainingTrainer)
    assert "seq_lengths" in trainer.train_dataset.column_names  # packed rows
    before = trainer.evaluate()["eval_perplexity"]

    metrics = fit_and_save(trainer, tmp_path, "lora", "pt")

    assert metrics["eval_perplexity"] == pytest.approx(math.exp(metrics["eval_loss"]))
    assert metrics["eval_perplexity"] < 0.5 * before, (before, metrics["eval_perplexity"])
    assert (
        json.loads((tmp_path / "metrics.json").read_text())["eval_perplexity"] == metrics["eval_perplexity"]
    )
    for name in ("trainer_log.jsonl", "loss.png", "adapter/adapter_model.safetensors"):
        assert (tmp_path / name).exists(), name


@pytest.mark.parametrize(
    ("overrides", "packed"),
    [
        (["method=lora_pt"], True),  # the pt presets pack
        (["method=full_pt", "method.packing=false"], False),  # method.packing overrides data.packing...
        (["method=lora_pt", "method.packing=null", "data.packing=false"], False),  # ...unless unset
        (["method=lora_sft", "data.packing=true"], True),  # other stages keep following data.packing
    ],
)
def test_method_packing_overrides_data_packing(overrides, packed):
    assert packing_enabled(compose(*overrides)) is packed
