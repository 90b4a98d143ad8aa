"""PPO end to end on the tiny model: it raises the reward, keeps the run-dir contract, resumes, and
uses the adapter-disabled model as its reference; bad reward settings fail at compose time."""

from __future__ import annotations

import gc
import json
from pathlib import Path

import pytest
import torch
from conftest import compose, run_cli

from llmft.config.errors import ConfigError
from llmft.main import check, run
from llmft.track.run_files import read_log

QUICK_PPO = (
    "method=lora_ppo",
    "logger=none",
    "method.learning_rate=1e-2",
    "method.temperature=0.5",  # sharpens the random model's flat distribution: a clearer signal
    "method.kl_coef=0.0",
    "method.max_completion_length=8",
    "method.per_device_train_batch_size=16",
    "method.mini_batch_size=8",
    "method.ppo_epochs=2",
    "method.save_steps=4",
)


def frequent_words(count: int = 3, temperature: float = 0.5) -> list[str]:
    """Words the untrained tiny model samples most often (it is random, and rebuilt when the demo data
    changes): rewarding them is a learnable task that is not too sparse at the start."""
    from collections import Counter

    from llmft.data.prompts import build_prompt_dataset
    from llmft.model.loader import load_model, load_tokenizer

    cfg = compose("logger=none")
    tokenizer = load_tokenizer(cfg.model)
    model = load_model(cfg, tokenizer, for_training=False)
    tokenizer.padding_side = "left"
    batch = tokenizer(build_prompt_dataset(cfg, tokenizer)["prompt"][:48], return_tensors="pt", padding=True)
    torch.manual_seed(0)
    output = model.generate(
        **batch, do_sample=True, temperature=temperature, top_k=0, top_p=1.0, max_new_tokens=8
    )
    words = Counter(
        tokenizer.decode([token]).strip()
        for token in output[:, batch["input_ids"].shape[1] :].flatten().tolist()
    )
    return [word for word, _ in words.most_common() if word.isalpha() and len(word) >= 3][:count]


def target_rewards(words: list[str]) -> str:
    specs = ",".join(f"{{_target_: llmft.train.rewards.Contains, text: {word}}}" for word in words)
    return f"method.reward_funcs=[{specs}]"


@pytest.fixture(scope="module")
def resumed_run(tmp_path_factory) -> Path:
    """8 PPO steps, then the same command with max_steps=16 in the same run dir."""
    run_dir = tmp_path_factory.mktemp("ppo")
    rewards = target_rewards(frequent_words())
    run(compose(*QUICK_PPO, rewards, "method.max_steps=8"), run_dir=run_dir)
    (run_dir / "first_session_steps.json").write_text(json.dumps([r["step"] for r in read_log(run_dir)]))
    run(compose(*QUICK_PPO, rewards, "method.max_steps=16"), run_dir=run_dir)
    return run_dir


def test_ppo_raises_the_mean_reward_of_sampled_replies(resumed_run):
    rewards = [record["reward"] for record in read_log(resumed_run)]
    assert len(rewards) == 16
    first, last = sum(rewards[:4]) / 4, sum(rewards[-4:]) / 4
    assert last > first + 0.5, rewards  # three words, each worth 1 per reply


def test_ppo_leaves_a_complete_run_dir_with_its_metrics(resumed_run):
    for name in ("trainer_log.jsonl", "metrics.json", "loss.png", "env.json", "adapter/adapter_config.json"):
        assert (resumed_run / name).exists(), name
    assert (resumed_run / "adapter" / "value_head.safetensors").exists()
    assert (resumed_run / "adapter" / "chat_template.jinja").exists()
    record = read_log(resumed_run)[-1]
    assert {"reward", "kl", "value_loss", "policy_loss", "clip_fraction", "entropy", "loss"} <= set(record)
    metrics = json.loads((resumed_run / "metrics.json").read_text())
    assert {"train_loss", "reward", "kl", "train_runtime", "train_tokens_per_second"} <= set(metrics)


def test_ppo_rerun_in_the_same_dir_continues_from_the_last_checkpoint(resumed_run):
    assert json.loads((resumed_run / "first_session_steps.json").read_text()) == list(range(1, 9))
    # Restarting from scratch would log steps 1-8 again; resuming logs only 9-16.
    assert [record["step"] for record in read_log(resumed_run)] == list(range(1, 17))
    checkpoints = sorted(p.name for p in (resumed_run / "checkpoints").glob("checkpoint-*"))
    assert checkpoints == ["checkpoint-12", "checkpoint-16"]  # save_total_limit=2
    state = json.loads((resumed_run / "checkpoints" / "checkpoint-16" / "trainer_state.json").read_text())
    assert state["global_step"] == 16


def test_the_reference_is_the_base_model_through_the_policy_with_its_adapter_disabled():
    from llmft.data.prompts import build_prompt_dataset
    from llmft.model.loader import load_model, load_tokenizer
    from llmft.train import ppo_core
    from llmft.train.ppo import PpoTrainer, build_optimizer, load_policy
    from llmft.train.rewards import build_reward_funcs

    cfg = compose(
        *QUICK_PPO, "method.max_steps=1", "method.per_device_train_batch_size=4", "method.mini_batch_size=4"
    )
    tokenizer = load_tokenizer(cfg.model)
    prompts = build_prompt_dataset(cfg, tokenizer)[:4]
    model, value_head = load_policy(cfg, tokenizer, "cpu")
    base = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" not in n}
    lora = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" in n}
    optimizer, _ = build_optimizer(cfg.method, model, value_head, total_steps=1)
    rewards = build_reward_funcs(["length_in_range"])  # any reward: the step must run, not learn
    trainer = PpoTrainer(cfg, model, value_head, tokenizer, rewards, optimizer, "cpu")
    trainer.step(prompts["prompt"], {"messages": prompts["messages"], "reference": prompts["reference"]})

    gc.collect()  # a reference copy kept anywhere (trainer, closure, cache) would be a second causal LM
    causal_lm = type(model.get_base_model())
    assert sum(isinstance(o, causal_lm) for o in gc.get_objects()) == 1
    params = dict(model.named_parameters())
    assert all(torch.equal(params[n], before) for n, before in base.items()), "base weights moved"
    assert any(not torch.equal(params[n], before) for n, before in lora.items()), "the adapter did not train"

    # Once the adapter moved, the reference still scores replies as the untouched base model does.
    queries, query_mask, replies = trainer.generate(prompts["prompt"])
    sequences, attention = (
        torch.cat([queries, replies], 1),
        torch.cat([query_mask, torch.ones_like(replies)], 1),
    )
    reference = trainer.reference_logprobs(sequences, attention, queries.shape[1])
    with torch.no_grad():
        policy = trainer.forward(sequences, attention, queries.shape[1])[0]
        base_model = load_model(cfg, tokenizer, for_training=False).eval()
        positions = (attention.cumsum(1) - 1).clamp(min=0)
        logits = base_model(input_ids=sequences, attention_mask=attention, position_ids=positions).logits
        base_logprobs = ppo_core.token_logprobs(
            logits[:, queries.shape[1] - 1 : -1], replies, cfg.method.temperature
        )
    assert torch.allclose(reference, base_logprobs, atol=1e-6), (reference - base_logprobs).abs().max()
    assert (reference - policy).abs().max() > 1e-3


def test_a_kl_penalty_keeps_the_policy_closer_to_the_reference_the_larger_it_is(tmp_path):
    rewards = target_rewards(frequent_words())  # a reward that pulls the policy away from the base model
    mean_kl = {}
    for kl_coef in (0.01, 1.0):
        run_dir = tmp_path / f"kl-{kl_coef}"
        steps = ("method.max_steps=6", "method.per_device_train_batch_size=8", "method.mini_batch_size=8")
        run(compose(*QUICK_PPO, rewards, *steps, f"method.kl_coef={kl_coef}"), run_dir=run_dir)
        kls = [record["kl"] for record in read_log(run_dir)]
        assert kls[0] == 0.0  # the LoRA adapter starts as a no-op: policy = reference
        mean_kl[kl_coef] = sum(kls[2:]) / len(kls[2:])
    print(f"mean KL over steps 3-6: {mean_kl}")
    assert mean_kl[0.01] > mean_kl[1.0] > 0.0, mean_kl


def problems(*overrides: str) -> str:
    with pytest.raises(ConfigError) as error:
        check(compose(*overrides))
    return str(error.value)


def test_ppo_without_a_reward_model_or_function_fails_at_compose_time():
    assert "needs a reward" in problems("method=lora_ppo", "method.reward_funcs=[]")


def test_a_reward_model_path_that_does_not_exist_fails_at_compose_time(tmp_path):
    message = problems("method=lora_ppo", f"method.reward_model={tmp_path}/nowhere")
    assert "does not exist" in message


def test_an_sft_adapter_is_refused_as_reward_model(tmp_path):
    adapter = tmp_path / "adapter"  # what an SFT run leaves
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"task_type": "CAUSAL_LM", "peft_type": "LORA"}))
    message = problems("method=lora_ppo", f"method.reward_model={tmp_path}")
    assert "is not a reward model" in message and "method=lora_rm" in message


def test_ppo_needs_lora_and_a_minibatch_that_divides_the_batch():
    message = problems(
        "method=lora_ppo",
        "method.finetuning_type=full",
        "method.per_device_train_batch_size=6",
        "method.mini_batch_size=4",
    )
    assert "needs LoRA" in message and "method.mini_batch_size=4 must divide" in message


def test_python_run_py_trains_ppo_end_to_end(tmp_path):
    result = run_cli(
        f"hydra.run.dir={tmp_path}",
        "method=lora_ppo",
        "logger=none",
        "method.max_steps=2",
        "method.max_completion_length=8",
        "method.per_device_train_batch_size=4",
        "method.ppo_epochs=1",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Run directory: {tmp_path}" in result.stdout
    assert (tmp_path / ".hydra" / "config.yaml").exists() and (
        tmp_path / "adapter" / "value_head.safetensors"
    ).exists()
    assert [record["step"] for record in read_log(tmp_path)] == [1, 2]
