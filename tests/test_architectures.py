"""Every real model preset, checked on a tiny model of its architecture: its LoRA targets exist,
a LoRA step trains, its named chat template renders with the tokenizer, and the tokenizer loads
with the ids it was trained with (qwen model types tempt AutoTokenizer into another class)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from tokenizers import Tokenizer

from llmft.config.schema import LlmftConfig, ModelConfig, TinyModelSpec
from llmft.data.templates import TEMPLATES
from llmft.model.adapters import apply_finetuning, linear_module_names
from llmft.model.loader import load_model, load_tokenizer
from llmft.model.tiny import ensure_tiny_model

PRESET_DIR = Path(__file__).resolve().parents[1] / "conf" / "model"
PRESETS = sorted(path.stem for path in PRESET_DIR.glob("*.yaml") if path.stem != "tiny")

# Hub-id family -> transformers architecture; checked in order (Qwen2.5 ids contain "qwen2").
FAMILY_ARCHITECTURES = [
    ("qwen3", "qwen3"),
    ("qwen2", "qwen2"),
    ("llama", "llama"),
    ("mistral", "mistral"),
    ("gemma", "gemma2"),
    ("phi-3", "phi3"),
]

CONVERSATION = [
    {"role": "system", "content": "You answer briefly."},
    {"role": "user", "content": "What colour is the sky?"},
    {"role": "assistant", "content": "Blue on a clear day."},
    {"role": "user", "content": "And at night?"},
    {"role": "assistant", "content": "Dark, with stars."},
]


def architecture_of(hub_id: str) -> str:
    lowered = hub_id.lower()
    for family, architecture in FAMILY_ARCHITECTURES:
        if family in lowered:
            return architecture
    raise KeyError(f"no tiny architecture for {hub_id}; extend FAMILY_ARCHITECTURES")


def preset_on_tiny(name: str):
    """The composed config with the preset as model group, its weights swapped for a tiny model
    of the same architecture (template, dtype, attention and LoRA targets stay the preset's)."""
    cfg = OmegaConf.structured(LlmftConfig(model=ModelConfig(name_or_path="unset")))
    cfg.model = OmegaConf.merge(cfg.model, OmegaConf.load(PRESET_DIR / f"{name}.yaml"))
    cfg.model.tiny = TinyModelSpec(architecture=architecture_of(cfg.model.name_or_path))
    cfg.hardware.device = "cpu"
    return cfg


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_lora_targets_exist_and_a_step_trains(preset):
    cfg = preset_on_tiny(preset)
    tokenizer = load_tokenizer(cfg.model)
    model = load_model(cfg, tokenizer)
    assert model.config.model_type == cfg.model.tiny.architecture
    assert set(cfg.model.lora_target) <= set(linear_module_names(model))

    model = apply_finetuning(model, cfg.method, cfg.model, quantized=False)
    adapter_before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    batch = tokenizer(["The sky is blue on a clear day."], return_tensors="pt")
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(2):  # lora_B starts at zero: the second step is the first to move lora_A
        loss = model(**batch, labels=batch["input_ids"]).loss
        assert torch.isfinite(loss)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    moved = {
        n
        for n, p in model.named_parameters()
        if n in adapter_before and not torch.equal(adapter_before[n], p)
    }
    assert any("lora_A" in n for n in moved) and any("lora_B" in n for n in moved)


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_template_renders_two_turns_and_marks_the_replies(preset):
    cfg = preset_on_tiny(preset)
    tokenizer = load_tokenizer(cfg.model, chat_template=TEMPLATES[cfg.model.template])
    text = tokenizer.apply_chat_template(CONVERSATION, tokenize=False)
    positions = [text.index(message["content"]) for message in CONVERSATION[1:]]
    assert positions == sorted(positions)

    encoded = tokenizer.apply_chat_template(CONVERSATION, return_dict=True, return_assistant_tokens_mask=True)
    trained = [
        tok for tok, keep in zip(encoded["input_ids"], encoded["assistant_masks"], strict=True) if keep
    ]
    trained_text = tokenizer.decode(trained)
    assert "Blue on a clear day." in trained_text and "Dark, with stars." in trained_text
    assert "sky?" not in trained_text


@pytest.mark.parametrize("architecture", ["qwen2", "qwen3", "llama", "phi3"])
def test_tokenizer_keeps_its_trained_ids(architecture):
    model_cfg = OmegaConf.structured(
        ModelConfig(name_or_path="tiny", tiny=TinyModelSpec(architecture=architecture))
    )
    trained = Tokenizer.from_file(str(ensure_tiny_model(model_cfg.tiny) / "tokenizer.json"))
    text = "Hello, world!  Numbers 12345 and ünïcode; the model's answer."
    assert load_tokenizer(model_cfg)(text).input_ids == trained.encode(text).ids
