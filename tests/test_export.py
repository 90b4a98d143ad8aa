"""task=export: the merged model equals base + adapter, reloads with plain transformers, respects the shard
size, keeps the chat template; a Modelfile sits beside it; bad requests fail at compose time."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from conftest import compose
from safetensors import safe_open

from llmft.config.errors import ConfigError
from llmft.main import check, run

SHARD_LIMIT = 200_000  # "200KB": smaller than the tiny model's 0.8 MB, so it must shard


@pytest.fixture(scope="module")
def adapter(tmp_path_factory) -> Path:
    """A trained adapter whose B matrices are far from zero, so merging it changes the model."""
    run_dir = tmp_path_factory.mktemp("train")
    overrides = ("method.max_steps=6", "data.max_samples=16", "logger=none", "method.learning_rate=2e-2")
    run(compose(*overrides), run_dir=run_dir)
    return run_dir / "adapter"


@pytest.fixture(scope="module")
def exported(adapter, tmp_path_factory) -> Path:
    export_dir = tmp_path_factory.mktemp("export") / "model"
    cfg = compose(
        "task=export",
        f"model.adapter_path={adapter}",
        f"task.export_dir={export_dir}",
        "task.max_shard_size=200KB",
    )
    run(cfg, run_dir=tmp_path_factory.mktemp("export_run"))
    return export_dir


def test_merged_model_equals_base_plus_adapter_and_reloads_with_plain_transformers(adapter, exported):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llmft.model.loader import resolve_model_path

    tokenizer = AutoTokenizer.from_pretrained(exported)
    ids = torch.tensor([tokenizer.encode("Give three tips for staying healthy.")])
    merged = AutoModelForCausalLM.from_pretrained(exported, dtype=torch.float32).eval()
    base = AutoModelForCausalLM.from_pretrained(resolve_model_path(compose().model), dtype=torch.float32)
    unmerged = PeftModel.from_pretrained(base, adapter).eval()
    with torch.no_grad():
        expected, got = unmerged(ids).logits, merged(ids).logits
        plain_base = unmerged.get_base_model()
        with unmerged.disable_adapter():
            untouched = plain_base(ids).logits
    assert not torch.allclose(expected, untouched, atol=1e-3), "the adapter changes nothing: a vacuous test"
    assert torch.allclose(got, expected, atol=1e-4), (got - expected).abs().max()
    assert not any(name.startswith("base_model") or "lora_" in name for name, _ in merged.named_parameters())


def test_the_inference_engine_answers_from_the_export_as_from_base_plus_adapter(adapter, exported):
    from llmft.infer.engine import SamplingParams
    from llmft.infer.hf_engine import HFEngine

    greedy = SamplingParams(max_new_tokens=8, do_sample=False)
    messages = [{"role": "user", "content": "Give three tips for staying healthy."}]
    merged = HFEngine.from_config(compose("task=chat", f"model.name_or_path={exported}", "model.tiny=null"))
    unmerged = HFEngine.from_config(compose("task=chat", f"model.adapter_path={adapter}"))
    reply = merged.chat(messages, greedy)
    assert reply.completion_tokens > 0 and reply.text == unmerged.chat(messages, greedy).text


def test_shards_respect_max_shard_size(exported):
    shards = sorted(exported.glob("model-*.safetensors"))
    index = json.loads((exported / "model.safetensors.index.json").read_text())
    assert len(shards) > 1 and {s.name for s in shards} == set(index["weight_map"].values())
    for shard in shards:
        with safe_open(str(shard), "pt") as handle:
            tensors = list(handle.keys())
        # a single tensor larger than the limit gets a shard of its own
        assert shard.stat().st_size <= SHARD_LIMIT * 1.05 or len(tensors) == 1, (shard.name, tensors)


def test_chat_template_generation_config_and_modelfile_survive(adapter, exported):
    from transformers import AutoTokenizer, GenerationConfig

    trained, reloaded = AutoTokenizer.from_pretrained(adapter), AutoTokenizer.from_pretrained(exported)
    conversation = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]
    assert reloaded.chat_template == trained.chat_template
    assert reloaded.apply_chat_template(conversation, tokenize=False) == trained.apply_chat_template(
        conversation, tokenize=False
    )

    generation = GenerationConfig.from_pretrained(exported)
    assert reloaded.convert_tokens_to_ids("<|im_end|>") in generation.eos_token_id

    modelfile = (exported / "Modelfile").read_text()
    assert "\nFROM .\n" in modelfile and "convert_hf_to_gguf.py" in modelfile
    assert 'TEMPLATE """' in modelfile and "<|im_start|>{{ .Role }}" in modelfile
    assert 'PARAMETER stop "<|im_end|>"' in modelfile


def test_a_full_model_exports_without_an_adapter_in_the_asked_dtype(tmp_path):
    from transformers import AutoModelForCausalLM

    from llmft.model.loader import resolve_model_path

    trained_model_dir = resolve_model_path(compose().model)  # stands in for outputs/<run>/model
    cfg = compose(
        "task=export",
        f"model.name_or_path={trained_model_dir}",
        "model.tiny=null",
        f"task.export_dir={tmp_path / 'out'}",
        "task.export_dtype=bfloat16",
    )
    run(cfg, run_dir=tmp_path / "run")
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    assert reloaded.dtype == torch.bfloat16
    assert (tmp_path / "out" / "Modelfile").is_file()


def test_a_reward_adapter_exports_with_its_score_head(tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from llmft.model.loader import resolve_model_path

    rm = ("method=lora_rm", "dataset=demo_dpo", "method.max_steps=3", "data.max_samples=16", "logger=none")
    run(compose(*rm), run_dir=tmp_path / "rm")
    adapter, out = tmp_path / "rm" / "adapter", tmp_path / "out"
    run(
        compose("task=export", f"model.adapter_path={adapter}", f"task.export_dir={out}"),
        run_dir=tmp_path / "run",
    )

    tokenizer = AutoTokenizer.from_pretrained(out)
    ids = torch.tensor([tokenizer.encode("A helpful, harmless reply.")])
    exported = AutoModelForSequenceClassification.from_pretrained(out).eval()
    base = AutoModelForSequenceClassification.from_pretrained(
        resolve_model_path(compose().model), num_labels=1
    )
    base.config.pad_token_id = tokenizer.pad_token_id
    unmerged = PeftModel.from_pretrained(base, adapter).eval()
    with torch.no_grad():
        assert torch.allclose(exported(ids).logits, unmerged(ids).logits, atol=1e-4)
    assert not (out / "Modelfile").exists()  # a reward model does not chat


def test_the_modelfile_speaks_the_llama3_format_when_the_template_is_llama3():
    from llmft.data.templates import apply_template
    from llmft.export.ollama import modelfile_text
    from llmft.model.loader import load_tokenizer

    cfg = compose("model.template=llama3", "task.system_prompt=Be terse.")
    tokenizer = load_tokenizer(cfg.model)
    apply_template(tokenizer, "llama3")
    text = modelfile_text(tokenizer, cfg.generation, cfg.task.system_prompt)
    assert "<|start_header_id|>assistant<|end_header_id|>" in text
    assert 'SYSTEM """Be terse."""' in text


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (("task.export_dir=out",), "task=export has nothing to export"),
        (("model.adapter_path=/nonexistent/adapter", "task.export_dir=out"), "holds no adapter_config.json"),
        (("model.adapter_path={adapter}",), "needs task.export_dir"),
        (
            ("model.adapter_path={adapter}", "task.export_dir=out", "quantization=bnb_4bit"),
            "merges into full",
        ),
        (("model.adapter_path={adapter}", "task.export_dir=out", "task.max_shard_size=lots"), "not a size"),
        (
            ("model.adapter_path={adapter}", "task.export_dir=out", "task.export_quantization_bit=5"),
            "not one of",
        ),
    ],
)
def test_bad_exports_fail_at_compose_time(adapter, overrides, message):
    with pytest.raises(ConfigError, match=message):
        check(compose("task=export", *(o.format(adapter=adapter) for o in overrides)))


@pytest.mark.skipif(importlib.util.find_spec("gptqmodel") is not None, reason="gptqmodel is installed here")
def test_gptq_export_without_its_packages_says_what_to_install(adapter):
    cfg = compose(
        "task=export",
        f"model.adapter_path={adapter}",
        "task.export_dir=out",
        "task.export_quantization_bit=4",
    )
    with pytest.raises(ConfigError, match="pip install optimum gptqmodel"):
        check(cfg)
