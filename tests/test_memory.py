"""The memory estimate: the seed's table for 7-8B models, the exact parameter count of a real config,
a measured CPU training within 2x, and `task=estimate` without loading weights."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, compose, run_cli
from safetensors import safe_open

from llmft.model.memory import GB, KNOWN_SHAPES, estimate_memory, load_shape

SMALL_BATCH = (
    "method.per_device_train_batch_size=1",
    "data.cutoff_len=512",
    "method.gradient_checkpointing=true",
)


def _estimate(*overrides: str, dtype_bytes: int = 2):
    cfg = compose(*overrides)
    shape, config = load_shape(cfg.model)
    return estimate_memory(cfg, shape, config, dtype_bytes=dtype_bytes)


@pytest.mark.parametrize(
    ("overrides", "low", "high"),
    [  # the seed's table for 7B: QLoRA 4-bit ~6 GB, LoRA 16-bit ~16 GB, full ~60 GB+ (bf16 Adam)
        (("model=mistral", "quantization=bnb_4bit", *SMALL_BATCH), 4, 8),
        (("model=llama3", "method=lora_sft", *SMALL_BATCH), 15, 22),
        (("model=llama3", "method=full_sft", *SMALL_BATCH), 60, 80),
    ],
)
def test_estimates_for_7b_class_models_match_the_known_table(overrides, low, high):
    estimate = _estimate(*overrides)
    assert low <= estimate.total / GB <= high, estimate.table()


def test_llama3_8b_has_8b_parameters_and_its_lora_21m():
    estimate = _estimate("model=llama3", "method.lora_target=all")
    assert estimate.params == pytest.approx(8.03e9, rel=0.01)
    assert estimate.trainable == pytest.approx(20.97e6, rel=0.01)


def test_gradient_checkpointing_and_smaller_batches_cut_activations_only():
    plain = _estimate("model=llama3")
    checkpointed = _estimate("model=llama3", "method.gradient_checkpointing=true")
    assert checkpointed.activations < plain.activations / 4
    assert checkpointed.weights == plain.weights and checkpointed.optimizer == plain.optimizer


@pytest.mark.parametrize("architecture", ["llama", "mistral"])
def test_a_local_config_gives_the_exact_parameter_count(architecture):
    from llmft.model.loader import resolve_model_path

    cfg = compose(f"model.tiny.architecture={architecture}")
    shape, _ = load_shape(cfg.model)
    weights = next(Path(resolve_model_path(cfg.model)).glob("*.safetensors"))
    with safe_open(str(weights), "pt") as handle:
        counted = sum(math.prod(handle.get_slice(key).get_shape()) for key in handle.keys())
    assert shape.total_params == counted


def test_task_estimate_prints_the_table_without_downloading_or_loading_weights(tmp_path):
    result = run_cli("task=estimate", "model=llama3", "quantization=bnb_4bit", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Memory estimate per device for meta-llama/Meta-Llama-3-8B-Instruct" in result.stdout
    assert "optimizer states" in result.stdout and "total" in result.stdout


# Full fine-tuning of a model big enough (13M parameters) that weights, gradients and Adam states stand out
# from the allocator's noise; the imports happen before the baseline so only training memory is measured.
RSS_OVERRIDES = (
    "method=full_sft",
    "logger=none",
    "method.max_steps=3",
    "data.max_samples=32",
    "data.cutoff_len=128",
    "method.per_device_train_batch_size=4",
    "model.tiny.hidden_size=512",
    "model.tiny.intermediate_size=1536",
    "model.tiny.num_hidden_layers=4",
    "model.tiny.num_attention_heads=8",
    "model.tiny.num_key_value_heads=4",
)
# ru_maxrss survives fork + exec on Linux (it would report pytest's own peak): read this process's
# high-water mark (VmHWM), reset after the imports where the kernel allows it.
MEASURE = """
import json, sys
sys.path.insert(0, "tests")
import matplotlib.pyplot, peft, torch, transformers, trl  # imports are not training memory
from conftest import compose
from llmft.main import run

def status(field):
    with open("/proc/self/status") as lines:
        return next(int(line.split()[1]) * 1024 for line in lines if line.startswith(field + ":"))

cfg = compose(*sys.argv[2:])
try:
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # VmHWM := VmRSS
except OSError:
    pass
baseline = status("VmRSS")
run(cfg, run_dir=sys.argv[1])
print(json.dumps({"growth": status("VmHWM") - baseline}))
"""


def test_the_tiny_model_estimate_is_within_2x_of_the_measured_peak_rss(tmp_path):
    from llmft.model.loader import resolve_model_path

    cfg = compose(*RSS_OVERRIDES)
    resolve_model_path(cfg.model)  # build the model here: its build is not training memory
    shape, config = load_shape(cfg.model)
    estimate = estimate_memory(cfg, shape, config)
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, str(tmp_path), *RSS_OVERRIDES],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    growth = json.loads(result.stdout.strip().splitlines()[-1])["growth"]
    assert 0.5 <= estimate.total / growth <= 2.0, (estimate.table(), growth / 1e6)


def test_every_shipped_hub_preset_has_a_known_shape():
    presets = sorted((ROOT / "conf" / "model").glob("*.yaml"))
    names = {compose(f"model={p.stem}").model.name_or_path for p in presets if p.stem != "tiny"}
    assert names <= set(KNOWN_SHAPES), names - set(KNOWN_SHAPES)
