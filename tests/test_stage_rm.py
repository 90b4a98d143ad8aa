"""The rm stage: a reward model that ranks held-out pairs, saved so /v1/score (and ppo) load it back."""

from __future__ import annotations

import json

from conftest import compose
from test_stage_data import pairs_dataset, write_pairs

from llmft.main import run
from llmft.model.loader import is_reward_model
from llmft.model.reward import RewardScorer
from llmft.track.run_files import read_log

QUICK = ("logger=none", "method.logging_steps=4", "method.eval_steps=1000", "method.save_steps=1000")
HELD_OUT = [
    [{"role": "user", "content": "Describe the lamp.\n99"}, {"role": "assistant", "content": reply}]
    for reply in ("The lamp is good.", "The lamp is bad.")
]


def test_lora_reward_model_ranks_held_out_pairs_and_serves_its_scores(tmp_path):
    data = pairs_dataset(write_pairs(tmp_path / "pairs.json", 64))
    run_dir = tmp_path / "run"
    run(
        compose(
            "method=lora_rm",
            *data,
            *QUICK,
            "method.max_steps=16",
            "method.learning_rate=2e-2",
            "data.val_size=16",
        ),
        run_dir=run_dir,
    )

    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["eval_accuracy"] >= 0.8, metrics
    assert any("accuracy" in record and "margin" in record for record in read_log(run_dir))
    for name in ("trainer_log.jsonl", "loss.png", "env.json", "adapter/adapter_config.json"):
        assert (run_dir / name).exists(), name

    serve = compose("task=serve", "hardware=cpu", f"model.adapter_path={run_dir / 'adapter'}")
    assert is_reward_model(serve.model)
    (good, bad), _ = RewardScorer.load(serve).score(HELD_OUT)  # the trained score head came back
    assert good > bad


def test_full_reward_model_saves_a_sequence_classification_checkpoint(tmp_path):
    data = pairs_dataset(write_pairs(tmp_path / "pairs.json", 16))
    run(compose("method=full_rm", *data, *QUICK, "method.max_steps=2"), run_dir=tmp_path)

    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["architectures"] == ["LlamaForSequenceClassification"]
    assert len(config["id2label"]) == 1  # one output: the score
    assert config["pad_token_id"] is not None
    serve = compose("task=serve", "hardware=cpu", f"model.name_or_path={tmp_path / 'model'}")
    assert is_reward_model(serve.model)
    scores, tokens = RewardScorer.load(serve).score(HELD_OUT)
    assert len(scores) == 2 and tokens > 0
