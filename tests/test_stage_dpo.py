"""The dpo stage: DPO raises the chosen-minus-rejected margin; with LoRA the reference is the adapter-free
base (no second copy); ORPO and SimPO train through the same preset family."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import compose
from safetensors.torch import load_file
from test_stage_data import pairs_dataset, write_pairs
from transformers import set_seed

from llmft.config.errors import ConfigError
from llmft.main import check
from llmft.model.loader import resolve_model_path
from llmft.track.run_files import read_log
from llmft.train.dpo import build_dpo_trainer, pairs_per_pass
from llmft.train.fit import fit_and_save

# Eval only at the end (eval_steps past max_steps): evaluating every few steps would double the run time.
QUICK = ("logger=none", "method.logging_steps=2", "method.eval_steps=1000", "method.save_steps=1000")


def margins(run_dir: Path) -> list[float]:
    return [record["rewards/margins"] for record in read_log(run_dir) if "rewards/margins" in record]


def test_lora_dpo_raises_the_margin_against_the_adapter_free_base(tmp_path):
    data = pairs_dataset(write_pairs(tmp_path / "pairs.json", 48))
    cfg = compose(
        "method=lora_dpo",
        *data,
        *QUICK,
        "method.max_steps=10",
        "method.learning_rate=3e-2",
        "data.val_size=8",
    )
    trainer = build_dpo_trainer(cfg, tmp_path)
    model = trainer.model
    assert trainer.ref_model is None and list(model.peft_config) == ["default"]  # no reference copy at all
    base = load_file(str(Path(resolve_model_path(cfg.model)) / "model.safetensors"))
    adapter = sum(p.numel() for name, p in model.named_parameters() if "lora_" in name)
    assert sum(p.numel() for p in model.parameters()) == sum(t.numel() for t in base.values()) + adapter

    metrics = fit_and_save(trainer, tmp_path, "lora", "dpo")

    first, *_, last = margins(tmp_path)
    assert first == pytest.approx(0.0, abs=1e-3)  # policy == reference at step 0
    assert last > 1.0, margins(tmp_path)
    assert metrics["eval_rewards/margins"] > 0 and metrics["eval_rewards/accuracies"] >= 0.8, metrics
    trained = {
        name.replace(".base_layer", ""): weight
        for name, weight in model.base_model.model.state_dict().items()
    }
    # LoRA left them as loaded
    assert all(torch.equal(trained[name], weight) for name, weight in base.items())
    assert (
        json.loads((tmp_path / "metrics.json").read_text())["eval_rewards/margins"]
        == metrics["eval_rewards/margins"]
    )
    assert (tmp_path / "adapter" / "adapter_model.safetensors").exists() and not (
        tmp_path / "adapter" / "ref"
    ).exists()


def test_pref_ftx_adds_an_sft_term_and_pref_loss_picks_the_variant(tmp_path):
    cfg = compose(
        "method=lora_dpo",
        "dataset=demo_dpo",
        "data.max_samples=8",
        "method.pref_loss=ipo",
        "method.pref_ftx=0.5",
        "method.pref_beta=0.3",
        *QUICK,
    )
    args = build_dpo_trainer(cfg, tmp_path).args
    assert (args.loss_type, args.loss_weights, args.beta) == (["ipo", "sft"], [1.0, 0.5], 0.3)


@pytest.mark.parametrize("preset", ["lora_orpo", "lora_simpo"])
def test_reference_free_variants_train_and_log_their_rewards(tmp_path, preset):
    data = pairs_dataset(write_pairs(tmp_path / "pairs.json", 24))
    cfg = compose(f"method={preset}", *data, *QUICK, "method.max_steps=4", "method.learning_rate=1e-2")
    trainer = build_dpo_trainer(cfg, tmp_path)
    assert type(trainer).__name__ == {"lora_orpo": "ORPOTrainer", "lora_simpo": "CPOTrainer"}[preset]
    fit_and_save(trainer, tmp_path, "lora", preset)
    assert len(margins(tmp_path)) >= 3
    assert (tmp_path / "adapter" / "adapter_model.safetensors").exists()


def test_precomputed_reference_log_probs_give_the_same_loss(tmp_path):
    """method.precompute_ref_log_probs moves the reference forward out of the steps, not the result."""
    data = pairs_dataset(write_pairs(tmp_path / "pairs.json", 8))
    losses = {}
    for precompute in (False, True):
        cfg = compose("method=lora_dpo", *data, *QUICK, f"method.precompute_ref_log_probs={precompute}")
        trainer = build_dpo_trainer(cfg, tmp_path / str(precompute))
        batch = trainer._prepare_inputs(next(iter(trainer.get_train_dataloader())))
        assert ("ref_chosen_logps" in batch) is precompute
        with torch.no_grad():
            losses[precompute] = trainer.compute_loss(trainer.model, batch)
    torch.testing.assert_close(losses[True], losses[False], atol=1e-5, rtol=1e-5)


def test_pairs_in_passes_train_exactly_as_the_whole_batch(tmp_path):
    """method.pref_pairs_per_pass holds one pass's activations at a time; the step stays the batch's, and
    the reference scores the step's pairs in one forward before its passes."""
    data = pairs_dataset(write_pairs(tmp_path / "pairs.json", 16))
    adapters, losses, forwards = {}, {}, {}
    for per_pass in (4, 1):
        cfg = compose(
            "method=lora_dpo",
            *data,
            *QUICK,
            "method.logging_steps=1",
            "method.max_steps=3",
            "method.learning_rate=1e-2",
            "method.per_device_train_batch_size=4",
            f"method.pref_pairs_per_pass={per_pass}",
        )
        set_seed(0)  # the same initial adapter for both
        trainer = build_dpo_trainer(cfg, tmp_path / str(per_pass))
        assert trainer.args.per_device_train_batch_size == per_pass
        assert trainer.args.gradient_accumulation_steps == 4 // per_pass
        grad_enabled = []  # per forward: with a graph (the policy) or without (the reference)
        trainer.model.register_forward_pre_hook(
            lambda module, args, seen=grad_enabled: seen.append(torch.is_grad_enabled())
        )
        trainer.train()
        forwards[per_pass] = {"policy": grad_enabled.count(True), "reference": grad_enabled.count(False)}
        adapters[per_pass] = {
            name: p.detach() for name, p in trainer.model.named_parameters() if p.requires_grad
        }
        losses[per_pass] = [
            record["loss"] for record in read_log(tmp_path / str(per_pass)) if "loss" in record
        ]
    assert len(losses[1]) == 3 and losses[1][-1] < losses[1][0]  # it trains
    assert losses[1] == pytest.approx(losses[4], rel=1e-4)
    assert forwards == {4: {"policy": 3, "reference": 3}, 1: {"policy": 12, "reference": 3}}
    for name, weight in adapters[4].items():
        torch.testing.assert_close(adapters[1][name], weight, atol=1e-5, rtol=1e-4)


def test_pairs_go_about_a_thousand_tokens_per_pass_on_the_cpu_only_where_that_keeps_the_loss():
    assert pairs_per_pass(compose("method=lora_dpo")) == 1  # cutoff 512: a pair holds up to 1024 tokens
    assert pairs_per_pass(compose("method=lora_dpo", "data.cutoff_len=256")) == 2
    assert pairs_per_pass(compose("method=lora_dpo", "method.pref_ftx=0.5")) == 4  # a token mean: no split
    with pytest.raises(ConfigError, match="method.pref_pairs_per_pass=1 splits each batch"):
        check(compose("method=lora_dpo", "method.pref_ftx=0.5", "method.pref_pairs_per_pass=1"))
    with pytest.raises(ConfigError, match="must divide method.per_device_train_batch_size=4"):
        check(compose("method=lora_dpo", "method.pref_pairs_per_pass=3"))


def test_the_fused_log_prob_head_scores_only_completions_on_cpu_with_the_same_result(monkeypatch):
    """TRL's fused head scores every position off CUDA; llmft tells it to score only labelled ones."""
    from trl.kernels.chunked_logprob import _use_triton
    from trl.trainer import utils
    from trl.trainer.utils import add_fused_lm_head

    from llmft.model.loader import chat_tokenizer, load_model
    from llmft.train.fused_head import score_labelled_positions_only_on_cpu

    monkeypatch.setattr(utils, "_use_triton", _use_triton)  # TRL's own choice, whatever ran before
    cfg = compose("model=tiny")
    tokenizer = chat_tokenizer(cfg.model)
    model = load_model(cfg, tokenizer).eval()
    add_fused_lm_head(model)
    input_ids = torch.randint(3, 200, (2, 12))
    labels = input_ids.masked_fill(torch.arange(12) < 7, -100)  # the prompt's positions have no label

    with torch.no_grad():
        every_position = model(input_ids=input_ids, labels=labels, fused_lm_head=True).log_probs
        assert not utils._use_triton(torch.device("cpu"))
        score_labelled_positions_only_on_cpu()
        assert utils._use_triton(torch.device("cpu"))  # the head now compacts on the CPU
        labelled_only = model(input_ids=input_ids, labels=labels, fused_lm_head=True).log_probs
    torch.testing.assert_close(labelled_only, every_position, atol=1e-5, rtol=1e-5)
    assert (labelled_only[:, :6] == 0).all() and (labelled_only[:, 6:] != 0).all()
