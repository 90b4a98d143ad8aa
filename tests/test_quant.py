"""Quantization: QLoRA (bitsandbytes 4/8-bit on the CPU) trains and reloads; pre-quantized presets and
impossible combinations are refused before anything loads."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from conftest import compose
from safetensors.torch import load_file

from llmft.config.errors import ConfigError
from llmft.main import check, run
from llmft.track.run_files import loss_series, read_log

QUICK = ("method.max_steps=8", "method.logging_steps=2", "data.max_samples=32", "logger=none")
# bitsandbytes' layer class and the dtype its packed weight is stored in
QUANTIZED = {"bnb_4bit": ("Linear4bit", torch.uint8), "bnb_8bit": ("Linear8bitLt", torch.int8)}


def _quantized_linears(model) -> list[torch.nn.Module]:
    return [m for m in model.modules() if type(m).__name__ in ("Linear4bit", "Linear8bitLt")]


# 4-bit also runs with gradient checkpointing, which QLoRA needs on real models
@pytest.mark.parametrize(("quantization", "checkpointing"), [("bnb_4bit", "true"), ("bnb_8bit", "false")])
def test_qlora_trains_keeps_the_base_quantized_and_the_adapter_reloads(tmp_path, quantization, checkpointing):
    from llmft.model.adapters import apply_finetuning
    from llmft.model.loader import load_model, load_tokenizer

    layer_class, packed_dtype = QUANTIZED[quantization]
    cfg = compose(*QUICK, f"quantization={quantization}", f"method.gradient_checkpointing={checkpointing}")
    tokenizer = load_tokenizer(cfg.model)
    model = apply_finetuning(load_model(cfg, tokenizer), cfg.method, cfg.model, quantized=True)
    quantized = _quantized_linears(model)
    assert quantized and all(type(m).__name__ == layer_class for m in quantized)
    assert all(m.weight.dtype == packed_dtype and not m.weight.requires_grad for m in quantized)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in name for name in trainable), sorted(trainable)[:5]

    run(cfg, run_dir=tmp_path)
    _, losses = loss_series(read_log(tmp_path))
    assert losses[-1] < losses[0], losses
    adapter = tmp_path / "adapter"
    saved = load_file(str(adapter / "adapter_model.safetensors"))
    assert saved and all("lora_" in key for key in saved)

    reloaded = load_model(
        compose(f"quantization={quantization}", f"model.adapter_path={adapter}"),
        tokenizer,
        for_training=False,
    )
    assert all(type(m).__name__ == layer_class for m in _quantized_linears(reloaded))
    lora = {name: p for name, p in reloaded.named_parameters() if "lora_" in name}
    key = next(iter(saved))  # saved keys drop the adapter name: ...lora_A.weight
    match = next(p for name, p in lora.items() if name.replace(".default", "") == key)
    assert torch.allclose(match.float(), saved[key].float())
    ids = torch.tensor([tokenizer.encode("hello there")])
    assert torch.isfinite(reloaded(ids).logits).all()


@pytest.mark.skipif(importlib.util.find_spec("gptqmodel") is not None, reason="gptqmodel is installed here")
@pytest.mark.parametrize(
    ("preset", "install"), [("gptq", "pip install optimum gptqmodel"), ("awq", "pip install gptqmodel")]
)
def test_prequantized_preset_without_its_backend_fails_at_compose_time(preset, install):
    with pytest.raises(ConfigError, match=install):
        check(compose(f"quantization={preset}"))


@pytest.mark.skipif(importlib.util.find_spec("gptqmodel") is not None, reason="gptqmodel is installed here")
def test_prequantized_loading_checks_the_backend_before_any_weight():
    from llmft.model.quantization import check_prequantized_checkpoint

    with pytest.raises(ImportError, match="pip install optimum gptqmodel"):
        check_prequantized_checkpoint("gptq", "/nonexistent/model", None, False)


def test_a_checkpoint_says_which_quantization_it_carries(tmp_path):
    from transformers import AutoConfig

    from llmft.model.loader import resolve_model_path
    from llmft.model.quantization import declared_quant_method

    plain = AutoConfig.from_pretrained(resolve_model_path(compose().model))
    assert declared_quant_method(plain) is None
    plain.quantization_config = {"quant_method": "gptq", "bits": 4}
    assert declared_quant_method(plain) == "gptq"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (("quantization=bnb_4bit", "method=full_sft"), "quantization=bnb_4bit needs LoRA"),
        (("quantization=bnb_8bit", "method=freeze_sft"), "quantization=bnb_8bit needs LoRA"),
        (("quantization=bnb_4bit", "method.pissa_init=true"), "pissa_init=true rewrites the base weights"),
        (("quantization=bnb_8bit", "hardware=deepspeed_z3"), "ZeRO-3 cannot partition quantization=bnb_8bit"),
        (("quantization=bnb_4bit", "hardware=fsdp"), "fsdp cannot shard quantization=bnb_4bit"),
        (("quantization=gptq", "method=full_sft"), "quantization=gptq needs LoRA"),
    ],
)
def test_impossible_quantization_combinations_fail_at_compose_time(overrides, message):
    with pytest.raises(ConfigError, match=message):
        check(compose(*overrides))


@pytest.mark.parametrize(("quant_type", "double_quant"), [("fp4", False), ("nf4", True)])
def test_4bit_knobs_reach_the_loaded_weights(quant_type, double_quant):
    from llmft.model.loader import load_model, load_tokenizer

    cfg = compose(
        "quantization=bnb_4bit",
        f"quantization.quant_type={quant_type}",
        f"quantization.double_quant={str(double_quant).lower()}",
    )
    model = load_model(cfg, load_tokenizer(cfg.model))
    state = _quantized_linears(model)[0].weight.quant_state
    assert state.quant_type == quant_type
    assert state.nested is double_quant
