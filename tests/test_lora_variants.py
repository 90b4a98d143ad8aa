"""LoRA variants (DoRA, rsLoRA, PiSSA, LoRA+, all-linear targets, extra trainable modules) and continued
training from an adapter: each trains, saves, and changes what it promises to change (LoRA+ trains in
its own test, which also checks the optimizer it gets)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import compose
from safetensors.torch import load_file

from llmft.config.errors import ConfigError
from llmft.main import check, run
from llmft.track.run_files import loss_series, read_log

QUICK = ("method.max_steps=4", "method.logging_steps=1", "data.max_samples=16", "logger=none")
ALL_LINEAR = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


def _train(run_dir: Path, *overrides: str) -> tuple[dict, dict[str, torch.Tensor]]:
    run(compose(*QUICK, *overrides), run_dir=run_dir)
    adapter = run_dir / "adapter"
    config = json.loads((adapter / "adapter_config.json").read_text())
    return config, load_file(str(adapter / "adapter_model.safetensors"))


def _model(*overrides: str):
    from llmft.model.adapters import apply_finetuning
    from llmft.model.loader import load_model, load_tokenizer

    cfg = compose(*overrides)
    tokenizer = load_tokenizer(cfg.model)
    return (
        apply_finetuning(load_model(cfg, tokenizer), cfg.method, cfg.model, quantized=False),
        tokenizer,
        cfg,
    )


@pytest.mark.parametrize(
    ("variant", "overrides"),
    [
        ("dora", ("method.use_dora=true",)),
        ("rslora", ("method.use_rslora=true",)),
        ("pissa", ("method.pissa_init=true", "method.pissa_iter=4")),
        ("all", ("method.lora_target=all",)),
        ("additional", ("method.additional_target=[embed_tokens,lm_head]",)),
    ],
)
def test_each_lora_variant_trains_and_saves(tmp_path, variant, overrides):
    config, weights = _train(tmp_path, *overrides)
    _, losses = loss_series(read_log(tmp_path))
    assert losses[-1] < losses[0], losses
    if variant == "dora":
        assert config["use_dora"] and any("lora_magnitude_vector" in key for key in weights)
    elif variant == "rslora":
        assert config["use_rslora"]
    elif variant == "pissa":  # saved as a plain LoRA adapter (rank 2r) for the unmodified base
        assert config["init_lora_weights"] is True and config["r"] == 2 * 8
    elif variant == "all":
        assert set(config["target_modules"]) == ALL_LINEAR
    elif variant == "additional":
        assert set(config["modules_to_save"]) == {"embed_tokens", "lm_head"}
        assert any("embed_tokens" in key for key in weights) and any("lm_head" in key for key in weights)


def test_dora_adds_a_magnitude_vector_per_target():
    model, _, cfg = _model("method.use_dora=true")
    magnitudes = [
        name for name, p in model.named_parameters() if "lora_magnitude_vector" in name and p.requires_grad
    ]
    targets = len(cfg.model.lora_target) * cfg.model.tiny.num_hidden_layers
    assert len(magnitudes) == targets


def test_pissa_moves_the_principal_part_out_of_the_base_and_saves_for_the_original_base(tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from llmft.model.loader import resolve_model_path
    from llmft.model.save import save_trained

    base_dir = resolve_model_path(compose().model)
    original = AutoModelForCausalLM.from_pretrained(base_dir).model.layers[0].self_attn.q_proj.weight.detach()
    model, tokenizer, _ = _model("method.pissa_init=true", "method.pissa_iter=0")  # exact SVD
    q_proj = model.base_model.model.model.layers[0].self_attn.q_proj
    residual = q_proj.base_layer.weight.detach()
    principal = q_proj.scaling["default"] * q_proj.lora_B["default"].weight @ q_proj.lora_A["default"].weight
    assert not torch.allclose(residual, original, atol=1e-3)  # the base now holds only the residual
    assert torch.allclose(residual + principal, original, atol=1e-5)

    with torch.no_grad():  # stand-in for training: move every adapter weight
        for name, param in model.named_parameters():
            if "lora_" in name:
                param.add_(0.01 * torch.randn_like(param))
    ids = torch.tensor([tokenizer.encode("hello there, general")])
    trained_logits = model(ids).logits
    save_trained(model, tokenizer, tmp_path, "lora")
    plain = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), tmp_path / "adapter")
    assert torch.allclose(plain(ids).logits, trained_logits, atol=1e-4)


def test_loraplus_gives_the_b_matrices_a_larger_learning_rate(tmp_path, monkeypatch):
    from transformers import Trainer

    created = []  # (model, optimizer) of each trainer
    create_optimizer = Trainer.create_optimizer

    def recording(self, *args, **kwargs):
        optimizer = create_optimizer(self, *args, **kwargs)
        created.append((self.model, optimizer))
        return optimizer

    monkeypatch.setattr(Trainer, "create_optimizer", recording)
    run(compose(*QUICK, "method.loraplus_lr_ratio=16", "method.learning_rate=1e-3"), run_dir=tmp_path)
    model, optimizer = created[0]
    # the scheduler has moved "lr" by now; "initial_lr" is what each group was given
    lr_of = {id(p): group["initial_lr"] for group in optimizer.param_groups for p in group["params"]}
    lora = {name: lr_of[id(p)] for name, p in model.named_parameters() if p.requires_grad}
    assert lora and all(lr == pytest.approx(16e-3) for name, lr in lora.items() if "lora_B" in name)
    assert all(lr == pytest.approx(1e-3) for name, lr in lora.items() if "lora_A" in name)


def test_continuing_from_an_adapter_starts_where_it_stopped(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    _, before = _train(first, "method.max_steps=8")
    _, after = _train(second, "method.max_steps=4", f"model.adapter_path={first / 'adapter'}")
    _, first_losses = loss_series(read_log(first))
    _, second_losses = loss_series(read_log(second))
    assert second_losses[0] < first_losses[0] - 0.2, (first_losses, second_losses)
    assert before.keys() == after.keys()
    assert any(not torch.equal(before[key], after[key]) for key in before)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (("method=freeze_sft", "method.use_dora=true"), "method.use_dora is a LoRA setting"),
        (("method=full_sft", "method.loraplus_lr_ratio=16"), "method.loraplus_lr_ratio is a LoRA setting"),
        (("method.loraplus_lr_ratio=0",), "must be > 0"),
        (("method.pissa_init=true", "model.adapter_path=somewhere"), "drop one of them"),
    ],
)
def test_impossible_variant_settings_fail_at_compose_time(overrides, message):
    with pytest.raises(ConfigError, match=message):
        check(compose(*overrides))


def test_an_unknown_additional_target_names_the_valid_modules():
    with pytest.raises(ValueError, match=r"\['lm_haed'\] match no module.*embed_tokens.*lm_head"):
        _model("method.additional_target=[lm_haed]")
