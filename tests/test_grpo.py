"""GRPO and RLOO (TRL's trainers) end to end on the tiny model, and both RL families scoring with the
reward model an rm run leaves."""

from __future__ import annotations

import json

import pytest
from conftest import compose
from test_ppo import frequent_words, target_rewards

from llmft.config.errors import ConfigError
from llmft.main import check, run
from llmft.track.run_files import read_log

QUICK_GROUP_RL = (
    "logger=none",
    "method.learning_rate=2e-2",
    "method.temperature=0.5",
    "method.max_completion_length=8",
    "method.per_device_train_batch_size=16",
    "method.num_generations=4",
    "method.save_steps=100",
)


def test_grpo_raises_the_mean_reward_and_leaves_a_complete_run_dir(tmp_path):
    run(
        compose("method=lora_grpo", *QUICK_GROUP_RL, target_rewards(frequent_words()), "method.max_steps=14"),
        run_dir=tmp_path,
    )

    rewards = [record["reward"] for record in read_log(tmp_path) if "reward" in record]
    assert len(rewards) == 14
    assert sum(rewards[-4:]) / 4 > sum(rewards[:4]) / 4 + 0.3, rewards
    for name in ("trainer_log.jsonl", "metrics.json", "loss.png", "env.json", "adapter/adapter_config.json"):
        assert (tmp_path / name).exists(), name
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["train_tokens"] > 0 and "train_runtime" in metrics


@pytest.fixture(scope="module")
def reward_model_run(tmp_path_factory):
    """What `python run.py method=lora_rm dataset=demo_dpo` leaves (two steps: it only has to load)."""
    run_dir = tmp_path_factory.mktemp("rm")
    run(compose("method=lora_rm", "dataset=demo_dpo", "logger=none", "method.max_steps=2"), run_dir=run_dir)
    return run_dir


@pytest.mark.parametrize("method", ["lora_rloo", "lora_ppo"])
def test_rloo_and_ppo_score_replies_with_an_rm_run_as_reward_model(method, reward_model_run, tmp_path):
    overrides = (
        f"method={method}",
        *QUICK_GROUP_RL,
        "method.reward_funcs=[]",
        f"method.reward_model={reward_model_run}",
        "method.max_steps=2",
        "method.per_device_train_batch_size=4",
        "method.num_generations=2",
        "method.mini_batch_size=4",
        "method.ppo_epochs=1",
    )
    run(compose(*overrides), run_dir=tmp_path)
    rewards = [record["reward"] for record in read_log(tmp_path) if "reward" in record]
    assert rewards and all(reward != 0 for reward in rewards)  # a score head's output, not a default
    assert (tmp_path / "adapter" / "adapter_model.safetensors").exists()


def test_an_rm_run_dir_passes_the_compose_time_check(reward_model_run):
    check(compose("method=lora_grpo", f"method.reward_model={reward_model_run}", "method.reward_funcs=[]"))


def test_num_generations_must_divide_the_batch():
    with pytest.raises(ConfigError, match=r"method.num_generations=3 must be >= 2 and divide"):
        check(compose("method=lora_grpo", "method.num_generations=3", "method.per_device_train_batch_size=8"))


def test_grpo_without_a_reward_fails_at_compose_time():
    with pytest.raises(ConfigError, match="needs a reward"):
        check(compose("method=lora_grpo", "method.reward_funcs=[]"))
