"""The model layer on the real tiny model: build, load, which weights train, what is saved."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from transformers import AutoModelForCausalLM, AutoTokenizer

from llmft.config.schema import LlmftConfig, ModelConfig, TinyModelSpec
from llmft.model.adapters import apply_finetuning, trainable_summary
from llmft.model.errors import ModelError
from llmft.model.loader import load_model, load_tokenizer, resolve_precision
from llmft.model.save import save_trained
from llmft.model.tiny import ensure_tiny_model

TEXTS = [
    "The cat sat on the mat and looked at the garden.",
    "Explain why the sky is blue in one short sentence.",
]


def make_cfg(**groups):
    """A composed config on the tiny llama, CPU fp32; `groups` override nodes, e.g. method={...}."""
    cfg = OmegaConf.structured(
        LlmftConfig(model=ModelConfig(name_or_path="tiny-llama", dtype="float32", tiny=TinyModelSpec()))
    )
    cfg.hardware.device = "cpu"
    cfg.hardware.precision = "fp32"
    return OmegaConf.merge(cfg, groups)


def build(cfg):
    tokenizer = load_tokenizer(cfg.model)
    model = load_model(cfg, tokenizer)
    model = apply_finetuning(model, cfg.method, cfg.model, quantized=cfg.quantization.method != "none")
    return model, tokenizer


def fixed_batch(tokenizer):
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    return {**batch, "labels": labels}


def train_steps(model, batch, steps: int = 5, lr: float = 1e-2) -> list[float]:
    torch.manual_seed(0)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    losses = []
    for _ in range(steps):
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return losses


def snapshot(model) -> dict[str, torch.Tensor]:
    return {name: param.detach().clone() for name, param in model.named_parameters()}


def changed(before: dict[str, torch.Tensor], model) -> set[str]:
    return {name for name, param in model.named_parameters() if not torch.equal(before[name], param)}


def test_tiny_build_is_deterministic_and_reloads(tmp_path, monkeypatch):
    paths = []
    for cache in ("a", "b"):
        monkeypatch.setenv("LLMFT_CACHE", str(tmp_path / cache))
        paths.append(ensure_tiny_model(TinyModelSpec()))
    assert paths[0] != paths[1] and paths[0].name == paths[1].name
    assert ensure_tiny_model(TinyModelSpec()) == paths[1]  # cached: not rebuilt
    assert ensure_tiny_model(TinyModelSpec(), seed=1) != paths[1]

    first, second = (AutoModelForCausalLM.from_pretrained(p) for p in paths)
    for (name, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    for name in ("tokenizer.json", "tokenizer_config.json", "config.json"):
        assert (paths[0] / name).read_bytes() == (paths[1] / name).read_bytes(), name

    tokenizer = AutoTokenizer.from_pretrained(paths[0])
    assert tokenizer(TEXTS[0]).input_ids == AutoTokenizer.from_pretrained(paths[1])(TEXTS[0]).input_ids
    assert tokenizer.eos_token == "<|im_end|>"
    assert len({tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id}) == 3
    assert first.config.vocab_size == len(tokenizer) <= TinyModelSpec().vocab_size
    assert first.generation_config.eos_token_id == tokenizer.eos_token_id
    assert tokenizer.decode(tokenizer(TEXTS[1]).input_ids, skip_special_tokens=True) == TEXTS[1]


def test_chat_template_marks_assistant_tokens():
    tokenizer = load_tokenizer(make_cfg().model)
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Name a colour."},
        {"role": "assistant", "content": "Blue."},
    ]
    encoded = tokenizer.apply_chat_template(messages, return_dict=True, return_assistant_tokens_mask=True)
    trained = [
        tok for tok, keep in zip(encoded["input_ids"], encoded["assistant_masks"], strict=True) if keep
    ]
    assert tokenizer.decode(trained) == "Blue.<|im_end|>"

    prompt = tokenizer.apply_chat_template(messages[:2], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>user\nName a colour.<|im_end|>\n<|im_start|>assistant\n")


def test_lora_trains_only_the_adapter():
    model, tokenizer = build(make_cfg())
    before = snapshot(model)
    losses = train_steps(model, fixed_batch(tokenizer))

    moved = changed(before, model)
    assert moved and all("lora_" in name for name in moved)
    assert any("lora_B" in name for name in moved)
    assert losses[-1] < losses[0]
    assert trainable_summary(model).startswith("trainable ")


def test_freeze_trains_only_the_chosen_layers_and_modules():
    method = {
        "finetuning_type": "freeze",
        "freeze_trainable_layers": 1,
        "freeze_trainable_modules": ["mlp"],
        "freeze_extra_modules": ["lm_head"],
    }
    model, tokenizer = build(make_cfg(method=method))
    before = snapshot(model)
    losses = train_steps(model, fixed_batch(tokenizer))

    allowed = {
        name for name in before if name.startswith("model.layers.1.mlp.") or name.startswith("lm_head.")
    }
    moved = changed(before, model)
    assert moved == allowed
    assert losses[-1] < losses[0]


def test_freeze_first_layers_with_negative_count():
    model, _ = build(make_cfg(method={"finetuning_type": "freeze", "freeze_trainable_layers": -1}))
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(name.startswith("model.layers.0.") for name in trainable)


@pytest.mark.parametrize(
    ("method", "message"),
    [
        ({"freeze_trainable_modules": ["mlpp"]}, "mlp"),
        ({"freeze_extra_modules": ["lm_haed"]}, "lm_head"),
        ({"freeze_trainable_layers": 3}, "2 decoder layers"),
    ],
)
def test_freeze_bad_settings_name_the_valid_choices(method, message):
    cfg = make_cfg(method={"finetuning_type": "freeze", **method})
    tokenizer = load_tokenizer(cfg.model)
    with pytest.raises(ValueError, match=message):
        apply_finetuning(load_model(cfg, tokenizer), cfg.method, cfg.model, quantized=False)


def test_full_trains_base_weights():
    model, tokenizer = build(make_cfg(method={"finetuning_type": "full"}))
    before = snapshot(model)
    losses = train_steps(model, fixed_batch(tokenizer), lr=1e-3)
    moved = changed(before, model)
    assert "model.layers.0.self_attn.q_proj.weight" in moved and "lm_head.weight" in moved
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("finetuning_type", ["lora", "full"])
def test_saved_model_reloads_with_plain_transformers_and_peft(tmp_path, finetuning_type):
    cfg = make_cfg(method={"finetuning_type": finetuning_type})
    model, tokenizer = build(cfg)
    batch = fixed_batch(tokenizer)
    train_steps(model, batch, steps=2, lr=1e-3)
    model.eval()
    with torch.no_grad():
        expected = model(**batch).logits

    out_dir = save_trained(model, tokenizer, tmp_path, finetuning_type)
    if finetuning_type == "lora":
        from peft import PeftModel

        assert out_dir == tmp_path / "adapter"
        base = AutoModelForCausalLM.from_pretrained(ensure_tiny_model(TinyModelSpec()))
        reloaded = PeftModel.from_pretrained(base, out_dir)
    else:
        assert out_dir == tmp_path / "model"
        reloaded = AutoModelForCausalLM.from_pretrained(out_dir)
        assert reloaded.config.use_cache and reloaded.generation_config.eos_token_id == tokenizer.eos_token_id
    with torch.no_grad():
        torch.testing.assert_close(reloaded.eval()(**batch).logits, expected, atol=1e-5, rtol=0)
    assert AutoTokenizer.from_pretrained(out_dir).chat_template == tokenizer.chat_template


def test_adapter_directory_tokenizer_and_weights_are_used_for_inference(tmp_path):
    cfg = make_cfg()
    model, tokenizer = build(cfg)
    tokenizer.chat_template = "{{ messages[0]['content'] }}"
    train_steps(model, fixed_batch(tokenizer), steps=1)
    adapter = save_trained(model, tokenizer, tmp_path, "lora")

    cfg.model.adapter_path = str(adapter)
    reloaded_tokenizer = load_tokenizer(cfg.model)
    assert reloaded_tokenizer.chat_template == tokenizer.chat_template
    inference = load_model(cfg, reloaded_tokenizer, for_training=False)
    assert not inference.training and any("lora_A" in name for name, _ in inference.named_parameters())


@pytest.mark.parametrize("finetuning_type", ["lora", "freeze"])
def test_gradient_checkpointing_still_trains_behind_frozen_embeddings(finetuning_type):
    cfg = make_cfg(method={"finetuning_type": finetuning_type, "gradient_checkpointing": True})
    model, tokenizer = build(cfg)
    base = model.get_base_model() if finetuning_type == "lora" else model
    assert base.is_activation_checkpointing
    before = snapshot(model)
    train_steps(model, fixed_batch(tokenizer), steps=2)
    moved = changed(before, model)
    assert any(name.startswith(("base_model.model.model.layers.0.", "model.layers.1.")) for name in moved)


def test_lora_target_all_covers_every_linear_but_the_head():
    model, _ = build(make_cfg(method={"lora_target": "all"}))
    wrapped = {name.rsplit(".", 1)[-1] for name, module in model.named_modules() if hasattr(module, "lora_A")}
    assert wrapped == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert not hasattr(model.get_output_embeddings(), "lora_A")


def test_bad_lora_target_lists_the_valid_names():
    with pytest.raises(ValueError, match=r"\['qkv_proj'\].*down_proj, gate_proj, k_proj"):
        build(make_cfg(method={"lora_target": ["q_proj", "qkv_proj"]}))


def test_qlora_4bit_on_cpu_trains_the_adapter():
    import bitsandbytes as bnb

    model, tokenizer = build(make_cfg(quantization={"method": "bnb_4bit"}))
    assert any(isinstance(m, bnb.nn.Linear4bit) for m in model.modules())
    before = snapshot(model)
    losses = train_steps(model, fixed_batch(tokenizer), steps=2)
    assert all(torch.isfinite(torch.tensor(losses)))
    assert any("lora_B" in name for name in changed(before, model))


def test_freeze_refuses_quantized_weights():
    cfg = make_cfg(method={"finetuning_type": "freeze"})
    with pytest.raises(ValueError, match="cannot train quantized weights"):
        apply_finetuning(torch.nn.Linear(2, 2), cfg.method, cfg.model, quantized=True)


def test_precision_and_dtype_follow_the_hardware():
    cfg = make_cfg()
    assert resolve_precision(OmegaConf.create({"device": "cpu", "precision": "auto"})) == "fp32"
    assert resolve_precision(OmegaConf.create({"device": "cpu", "precision": "bf16"})) == "bf16"
    with pytest.raises(ValueError, match="fp16 needs a CUDA GPU"):
        resolve_precision(OmegaConf.create({"device": "cpu", "precision": "fp16"}))
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA GPU is visible"):
            resolve_precision(OmegaConf.create({"device": "cuda", "precision": "auto"}))

    cfg.model.dtype = "auto"
    cfg.hardware.precision = "bf16"
    model = load_model(cfg, load_tokenizer(cfg.model))
    assert model.dtype == torch.bfloat16 and model.config.use_cache is False


def test_flash_attention_falls_back_to_sdpa_where_unavailable(caplog):
    cfg = make_cfg(model={"attn_implementation": "flash_attention_2"})
    with caplog.at_level("WARNING", logger="llmft.model.loader"):
        model = load_model(cfg, load_tokenizer(cfg.model))
    assert model.config._attn_implementation == "sdpa"
    assert "using sdpa" in caplog.text


def test_unreachable_hub_model_names_the_key_and_the_fix(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    model_cfg = OmegaConf.structured(ModelConfig(name_or_path="meta-llama/Llama-3.2-1B-Instruct"))
    with pytest.raises(
        ModelError, match=r"model.name_or_path='meta-llama/Llama-3.2-1B-Instruct'.*hf auth login"
    ):
        load_tokenizer(model_cfg)
    model_cfg.name_or_path = str(Path("outputs") / "no" / "such" / "model")
    with pytest.raises(ModelError, match="model.name_or_path='outputs/no/such/model' does not exist"):
        load_tokenizer(model_cfg)
