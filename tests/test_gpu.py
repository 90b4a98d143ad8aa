"""The GPU paths, where a CUDA GPU is present (skipped elsewhere, CI included): bf16 training with torch's
flash-attention varlen kernel on padding-free rows, QLoRA through bitsandbytes on CUDA, Liger's kernels."""

from __future__ import annotations

import itertools
import types

import pytest
import torch
from conftest import compose
from test_speed import samples

import llmft.model.attention as attention
from llmft.data.collate import PaddingFreeCollator
from llmft.main import run
from llmft.track.run_files import loss_series, read_log, read_metrics

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

GPU = ("hardware=gpu", "hardware.precision=bf16", "logger=none", "method.logging_steps=1")


@pytest.fixture
def varlen_calls(monkeypatch) -> list[int]:
    """Counts the calls of torch's varlen kernel (rows of samples it attended over)."""
    if attention.varlen_attn is None:
        pytest.skip(f"torch {torch.__version__} has no torch.nn.attention.varlen")
    calls = []
    kernel = attention.varlen_attn

    def counted(*args, **kwargs):
        calls.append(1)
        return kernel(*args, **kwargs)

    monkeypatch.setattr(attention, "varlen_attn", counted)
    return calls


def test_the_varlen_kernel_attends_like_sdpa_on_each_sample_alone(varlen_calls):
    """Grouped-query heads (8 query, 2 key/value), samples of 1 to 300 tokens: output and gradients."""
    torch.manual_seed(0)
    lengths = [5, 130, 1, 300]
    cu_seq_lens = torch.tensor([0, *itertools.accumulate(lengths)], dtype=torch.int32, device="cuda")
    shapes = {
        "query": (1, 8, sum(lengths), 64),
        "key": (1, 2, sum(lengths), 64),
        "value": (1, 2, sum(lengths), 64),
    }
    inputs = {name: torch.randn(shape, device="cuda") for name, shape in shapes.items()}
    module = types.SimpleNamespace(num_key_value_groups=4, is_causal=True, training=True)
    upstream = torch.randn(1, sum(lengths), 8, 64, device="cuda")

    def attend(dtype, **kwargs):
        leaves = {name: tensor.detach().to(dtype).requires_grad_() for name, tensor in inputs.items()}
        output, _ = attention.varlen_sdpa_attention(
            module, **leaves, attention_mask=None, cu_seq_lens_q=cu_seq_lens, scaling=64**-0.5, **kwargs
        )
        (output.float() * upstream).sum().backward()
        return output.float(), {name: leaf.grad.float() for name, leaf in leaves.items()}

    # fp32 takes the per-sample SDPA path: the reference
    reference, reference_grads = attend(torch.float32, max_length_q=300)
    assert not varlen_calls
    output, grads = attend(torch.bfloat16, max_length_q=300)
    assert len(varlen_calls) == 1
    torch.testing.assert_close(output, reference, atol=3e-2, rtol=3e-2)
    for name in grads:
        torch.testing.assert_close(grads[name], reference_grads[name], atol=6e-2, rtol=6e-2)


def test_padding_free_bf16_logits_equal_each_sample_alone(varlen_calls):
    from llmft.model.loader import chat_tokenizer, load_model

    cfg = compose("model=tiny", "model.dtype=bfloat16", *GPU)
    tokenizer = chat_tokenizer(cfg.model)
    model = load_model(cfg, tokenizer).eval()
    assert next(model.parameters()).is_cuda and model.config._attn_implementation == "sdpa_varlen"
    examples = samples(tokenizer)
    batch = {k: v.cuda() if torch.is_tensor(v) else v for k, v in PaddingFreeCollator()(examples).items()}
    batch.pop("labels")
    with torch.no_grad():
        packed = model(**batch).logits[0].float()
        start = 0
        for example in examples:
            alone = model(input_ids=torch.tensor([example["input_ids"]], device="cuda")).logits[0].float()
            torch.testing.assert_close(packed[start : start + len(alone)], alone, atol=5e-2, rtol=5e-2)
            start += len(alone)
    assert len(varlen_calls) == model.config.num_hidden_layers  # the packed pass, once per layer


def test_bf16_lora_sft_packed_on_the_gpu_learns_and_reports_gpu_memory(tmp_path, varlen_calls):
    run(
        compose(*GPU, "data.packing=true", "method.max_steps=30", "method.learning_rate=1e-3"),
        run_dir=tmp_path,
    )
    _, losses = loss_series(read_log(tmp_path))
    assert losses[-1] < 0.9 * losses[0], losses
    assert varlen_calls  # autocast hands attention bf16 tensors: the varlen kernel ran
    assert read_metrics(tmp_path)["peak_gpu_memory_mb"] > 0
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()


def test_qlora_4bit_trains_on_the_gpu_with_a_quantized_base(tmp_path):
    from llmft.model.adapters import apply_finetuning
    from llmft.model.loader import load_model, load_tokenizer

    cfg = compose(*GPU, "quantization=bnb_4bit", "method.max_steps=20", "method.learning_rate=1e-3")
    model = apply_finetuning(
        load_model(cfg, load_tokenizer(cfg.model)), cfg.method, cfg.model, quantized=True
    )
    quantized = [m for m in model.modules() if type(m).__name__ == "Linear4bit"]
    assert quantized and all(m.weight.is_cuda and m.weight.dtype == torch.uint8 for m in quantized)
    del model

    run(cfg, run_dir=tmp_path)
    _, losses = loss_series(read_log(tmp_path))
    assert losses[-1] < losses[0], losses
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()


def test_liger_kernels_patch_the_model_and_train_to_the_same_losses(tmp_path, monkeypatch):
    liger = pytest.importorskip("liger_kernel.transformers")
    patched = []
    apply = liger._apply_liger_kernel_to_instance
    monkeypatch.setattr(
        liger, "_apply_liger_kernel_to_instance", lambda **kw: patched.append(1) or apply(**kw)
    )
    losses = {}
    for kernels in ("false", "true"):
        run(compose(*GPU, "method.max_steps=5", f"model.liger_kernel={kernels}"), run_dir=tmp_path / kernels)
        losses[kernels] = loss_series(read_log(tmp_path / kernels))[1]
    assert patched == [1]
    torch.testing.assert_close(losses["true"], losses["false"], atol=0, rtol=2e-2)
