"""The speed features change speed, not results: padding-free and packed batches give each sample the
logits and loss it gets alone; the warm cache skips the data; a plain run imports nothing it does not
use, and imports without garbage-collector passes; and the benchmark itself runs and reports every figure."""

from __future__ import annotations

import copy
import gc
import importlib.util
import itertools
import json
import logging
import subprocess
import sys
import types
from functools import partial

import pytest
import torch
from conftest import ROOT, compose
from datasets import Dataset
from transformers import set_seed

from llmft.config.errors import ConfigError
from llmft.config.imports import import_entry_point
from llmft.data.collate import PaddedCollator, PaddingFreeCollator
from llmft.data.packing import best_fit_rows, pack
from llmft.data.tokenize import IGNORE_INDEX
from llmft.main import check
from llmft.model import optional
from llmft.model.loader import chat_tokenizer, load_model
from llmft.model.logits import takes_logits_mask
from llmft.model.unpad import unpad_decoder
from llmft.track.run_files import read_log
from llmft.train.sft import batch_collator, build_sft_trainer, rows_per_pass, uses_liger_kernels


@pytest.fixture(scope="module")
def tiny():
    """The tiny model as training loads it (padding-free attention), in eval mode, and its tokenizer."""
    cfg = compose("model=tiny")
    tokenizer = chat_tokenizer(cfg.model)
    model = load_model(cfg, tokenizer)
    assert model.config._attn_implementation == "sdpa_varlen"
    return model.eval(), tokenizer


def samples(tokenizer) -> list[dict]:
    """A chat sample with masked prompt (sft), a plain text sample (pt) and a short one."""
    from llmft.data.tokenize import encode_conversation, encode_text

    chat = {
        "system": None,
        "tools": None,
        "chosen": None,
        "messages": [
            {"role": "user", "content": "What colour is snow?"},
            {"role": "assistant", "content": "Snow is white."},
        ],
    }
    return [
        encode_conversation(tokenizer, chat, 512),
        encode_text(tokenizer, "The cat sat on the mat and looked at the moon for a long time.", 512),
        encode_text(tokenizer, "Rain.", 512),
    ]


def test_padding_free_logits_equal_each_sample_alone(tiny):
    model, tokenizer = tiny
    examples = samples(tokenizer)
    batch = PaddingFreeCollator()(examples)
    lengths = [len(example["input_ids"]) for example in examples]
    starts = [0, lengths[0], lengths[0] + lengths[1]]

    assert batch["input_ids"].shape == (1, sum(lengths))  # one row, not a single pad token
    assert batch["position_ids"][0, starts].tolist() == [0, 0, 0]  # positions restart at every sample
    # No label crosses a boundary: a sample's first token is never the target of the previous sample.
    assert (batch["labels"][0, starts] == IGNORE_INDEX).all()
    with torch.no_grad():
        packed = model(**{k: v for k, v in batch.items() if k != "labels"}).logits[0]
        for start, example in zip(starts, examples, strict=True):
            alone = model(input_ids=torch.tensor([example["input_ids"]])).logits[0]
            torch.testing.assert_close(packed[start : start + len(alone)], alone, atol=1e-4, rtol=1e-4)


def documented_varlen_attn(q, k, v, cu_seq_q, cu_seq_k, max_q, max_k, *, scale, window_size, **grouped):
    """torch.nn.attention.varlen_attn's contract, per sample on the CPU: [T, heads, head_dim] in and out,
    samples between cu_seq offsets, window (-1, 0) = causal, fewer key/value heads shared by the queries."""
    assert window_size == (-1, 0) and cu_seq_k is cu_seq_q and max_q == max_k == cu_seq_q.diff().max()
    bounds = cu_seq_q.tolist()
    return torch.cat(
        [
            torch.nn.functional.scaled_dot_product_attention(
                *(t[start:end].transpose(0, 1) for t in (q, k, v)),
                is_causal=True,
                scale=scale,
                enable_gqa=True,
            ).transpose(0, 1)
            for start, end in itertools.pairwise(bounds)
        ]
    )


def test_the_gpu_varlen_call_keeps_layout_heads_and_scale(monkeypatch):
    """The CPU half of tests/test_gpu.py: handed to a kernel that follows varlen_attn's documented contract,
    llmft's call gives the per-sample SDPA result (grouped heads, a model's own scale). The kernel itself
    runs on CUDA only."""
    import llmft.model.attention as attention

    torch.manual_seed(0)
    lengths = [3, 17, 1, 9]
    cu_seq_lens = torch.tensor([0, *itertools.accumulate(lengths)], dtype=torch.int32)
    query, key, value = (torch.randn(1, heads, sum(lengths), 8) for heads in (4, 2, 2))
    module = types.SimpleNamespace(num_key_value_groups=2, is_causal=True)
    kwargs = dict(cu_seq_lens_q=cu_seq_lens, scaling=0.3, max_length_q=17)
    per_sample, _ = attention.varlen_sdpa_attention(module, query, key, value, None, **kwargs)
    monkeypatch.setattr(attention, "varlen_attn", documented_varlen_attn)
    monkeypatch.setattr(attention, "_runs_flash_varlen", lambda query, kwargs: True)
    one_call, _ = attention.varlen_sdpa_attention(module, query, key, value, None, **kwargs)
    torch.testing.assert_close(one_call, per_sample)


def test_padding_free_loss_equals_the_padded_batch(tiny):
    model, tokenizer = tiny
    examples = samples(tokenizer)
    with torch.no_grad():
        padded = model(**PaddedCollator(tokenizer.pad_token_id)(examples)).loss
        padding_free = model(**PaddingFreeCollator()(examples)).loss
    torch.testing.assert_close(padding_free, padded, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("collator", ["padding_free", "padded"])
def test_logits_only_where_trained_leave_the_loss_and_its_gradient_unchanged(tiny, collator):
    """Prompt tokens skip the LM head: fewer logits, the same loss and the same gradient."""
    model, tokenizer = tiny
    examples = samples(tokenizer)
    make = (
        PaddingFreeCollator if collator == "padding_free" else partial(PaddedCollator, tokenizer.pad_token_id)
    )
    full, trimmed = make()(examples), make(trained_logits_only=True)(examples)
    targets = [label for example in examples for label in example["labels"][1:]]
    trained = sum(label != IGNORE_INDEX for label in targets)
    assert takes_logits_mask(model)

    losses, gradients = [], []
    for batch in (full, trimmed):
        model.zero_grad()
        output = model(**batch)
        output.loss.backward()
        losses.append(output.loss.detach())
        gradients.append(model.model.layers[0].mlp.up_proj.weight.grad.clone())
    model.zero_grad()
    assert output.logits.shape[0] == trained < full["input_ids"].numel()  # the prompt's logits are skipped
    torch.testing.assert_close(losses[1], losses[0], atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(gradients[1], gradients[0], atol=1e-6, rtol=1e-5)


def test_padded_batches_run_padding_free_with_the_same_logits_and_gradient(tiny):
    """DPO's padded [chosen; rejected] batches: the unpadded decoder gives every real token the same
    logits and the weights the same gradient, and never sees a pad token."""
    model, tokenizer = tiny
    cfg = compose("model=tiny")
    wrapped = load_model(cfg, tokenizer).eval()
    assert unpad_decoder(wrapped)
    unpadded = copy.deepcopy(wrapped)  # TRL's frozen reference is such a copy: it must run its own weights,
    wrapped.get_decoder().layers[0].self_attn.q_proj.weight.data.zero_()  # not the original's
    seen = []
    unpadded.get_decoder().embed_tokens.register_forward_hook(
        lambda module, args, out: seen.append(out.shape)
    )
    batch = PaddedCollator(tokenizer.pad_token_id)(samples(tokenizer))
    real = batch["attention_mask"].bool()

    logits, gradients = [], []
    for each in (model, unpadded):
        each.zero_grad()
        output = each(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        (output.logits[real].square().mean()).backward()
        logits.append(output.logits[real].detach())
        gradients.append(each.model.layers[0].self_attn.q_proj.weight.grad.clone())
    model.zero_grad()
    assert seen == [(1, int(real.sum()), model.config.hidden_size)]  # one row of real tokens only
    torch.testing.assert_close(logits[1], logits[0], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(gradients[1], gradients[0], atol=1e-5, rtol=1e-4)


def _graph_nodes(tensor: torch.Tensor) -> set[str]:
    """The kinds of autograd node behind `tensor`."""
    seen, stack = {}, [tensor.grad_fn]
    while stack:
        node = stack.pop()
        if node is not None and id(node) not in seen:
            seen[id(node)] = type(node).__name__
            stack.extend(next_node for next_node, _ in node.next_functions)
    return set(seen.values())


def test_fused_lora_layers_give_peft_s_logits_and_gradients(tiny):
    """method.lora_fused (default) runs each LoRA linear as one autograd function: same numbers as PEFT."""
    from llmft.model.adapters import apply_finetuning

    model, tokenizer = tiny
    batch = PaddingFreeCollator()(samples(tokenizer))
    outputs = {}
    for fused in (False, True):
        method = compose("method=lora_sft", "method.lora_target=all", f"method.lora_fused={fused}").method
        torch.manual_seed(0)
        peft_model = apply_finetuning(copy.deepcopy(model), method, compose().model, quantized=False)
        for name, weight in peft_model.named_parameters():
            if "lora_B" in name:  # a trained adapter: B starts at zero, which would hide its path
                torch.nn.init.normal_(weight, std=0.02)
        output = peft_model(**batch)
        output.loss.backward()
        assert ("_LoraLinearBackward" in _graph_nodes(output.loss)) is fused
        gradients = {name: p.grad for name, p in peft_model.named_parameters() if p.requires_grad}
        outputs[fused] = output.logits.detach(), gradients
    torch.testing.assert_close(outputs[True][0], outputs[False][0], atol=1e-5, rtol=1e-5)
    assert outputs[True][1].keys() == outputs[False][1].keys()
    for name, gradient in outputs[False][1].items():
        torch.testing.assert_close(outputs[True][1][name], gradient, atol=1e-6, rtol=1e-4)


def test_packed_rows_keep_every_sample_whole_and_apart(tiny):
    model, tokenizer = tiny
    lengths = [300, 200, 120, 90, 60, 40, 10]
    rows = best_fit_rows(lengths, capacity=320)
    assert sorted(index for row in rows for index in row) == list(range(len(lengths)))
    assert all(sum(lengths[index] for index in row) <= 320 for row in rows)
    assert len(rows) == 3  # 300+10 | 200+120 | 90+60+40: as few rows as the 820 tokens allow

    examples = samples(tokenizer)
    packed = pack(Dataset.from_list(examples), cutoff_len=512)
    assert len(packed) == 1 and packed[0]["seq_lengths"] == sorted(
        (len(example["input_ids"]) for example in examples), reverse=True
    )
    with torch.no_grad():
        row_loss = model(**PaddingFreeCollator()([packed[0]])).loss
        alone_loss = model(**PaddedCollator(tokenizer.pad_token_id)(examples)).loss
    torch.testing.assert_close(row_loss, alone_loss, atol=1e-5, rtol=1e-5)


def cached_pt(tmp_path) -> tuple[str, ...]:
    return ("method=lora_pt", "dataset=demo_pt", f"data.cache_dir={tmp_path}", "data.cutoff_len=128")


def test_packing_is_cached_with_the_tokens(tmp_path, monkeypatch):
    """A warm start does no tokenisation and no pass over the data; packing has its own entry."""
    from llmft.data import pipeline

    calls = {"load": 0, "encode": 0}
    load, encode = pipeline.load_canonical, pipeline.encode_text

    def counting_load(*args, **kwargs):
        calls["load"] += 1
        return load(*args, **kwargs)

    def counting_encode(*args, **kwargs):
        calls["encode"] += 1
        return encode(*args, **kwargs)

    monkeypatch.setattr(pipeline, "load_canonical", counting_load)
    monkeypatch.setattr(pipeline, "encode_text", counting_encode)
    cfg = compose(*cached_pt(tmp_path))
    tokenizer = chat_tokenizer(cfg.model)

    train, _ = pipeline.build_sft_datasets(cfg, tokenizer)
    assert "seq_lengths" in train.column_names and calls["load"] == 1 and calls["encode"] > 0
    done = dict(calls)
    again, _ = pipeline.build_sft_datasets(cfg, tokenizer)
    assert calls == done, "a warm start must not read or tokenise the data again"
    assert again["seq_lengths"] == train["seq_lengths"]

    unpacked, _ = pipeline.build_sft_datasets(
        compose(*cached_pt(tmp_path), "method.packing=false"), tokenizer
    )
    assert calls["load"] == 2 and "seq_lengths" not in unpacked.column_names

    tokenizer.chat_template = tokenizer.chat_template.replace("<|im_start|>", "<|im_start|> ")
    pipeline.build_sft_datasets(cfg, tokenizer)
    assert calls["load"] == 3, "a changed chat template must rebuild"


def test_packed_rows_in_passes_train_exactly_as_the_whole_batch(tmp_path):
    """method.rows_per_pass holds one packed row's activations at a time; the step stays the batch's:
    transformers divides each pass's loss by the whole step's token count."""
    adapters, losses = {}, {}
    for per_pass in (4, 1):
        run_dir = tmp_path / str(per_pass)
        cfg = compose(
            "data.packing=true",
            "data.cutoff_len=128",
            f"data.cache_dir={tmp_path / 'cache'}",
            "method.logging_steps=1",
            "method.max_steps=3",
            "method.learning_rate=1e-2",
            "method.per_device_train_batch_size=4",
            f"method.rows_per_pass={per_pass}",
        )
        set_seed(0)  # the same initial adapter for both
        trainer = build_sft_trainer(cfg, run_dir)
        assert trainer.args.per_device_train_batch_size == per_pass
        assert trainer.args.gradient_accumulation_steps == 4 // per_pass
        trainer.train()
        adapters[per_pass] = {
            name: p.detach() for name, p in trainer.model.named_parameters() if p.requires_grad
        }
        losses[per_pass] = [record["loss"] for record in read_log(run_dir) if "loss" in record]
    assert len(losses[1]) == 3 and losses[1][-1] < losses[1][0]  # it trains
    assert losses[1] == pytest.approx(losses[4], rel=1e-5)
    for name, weight in adapters[4].items():
        torch.testing.assert_close(adapters[1][name], weight, atol=1e-5, rtol=1e-4)


def test_packed_rows_go_about_a_thousand_tokens_per_pass_on_the_cpu_and_a_bad_split_is_refused(tiny):
    model, _ = tiny
    batch = "method.per_device_train_batch_size=4"
    for cutoff, per_pass in ((512, 2), (1024, 1), (4096, 1), (256, 4)):
        assert (
            rows_per_pass(compose("data.packing=true", f"data.cutoff_len={cutoff}", batch), model) == per_pass
        )
    assert rows_per_pass(compose("data.packing=false", batch), model) == 4  # short rows: whole batch
    with pytest.raises(
        ConfigError, match="method.rows_per_pass=3 must divide method.per_device_train_batch_size=4"
    ):
        check(compose("method.rows_per_pass=3", batch))


def test_liger_kernels_are_refused_where_they_cannot_run_and_leave_the_loss_to_liger(
    tiny, monkeypatch, caplog
):
    """Liger's kernels are Triton (CUDA only) and patched in by transformers' Trainer (sft, pt): anything
    else is a one-line error before loading, and a run that finds no GPU warns and trains without them."""
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *rest: None if name == "liger_kernel" else find_spec(name, *rest),
    )
    with pytest.raises(ConfigError) as refused:
        check(
            compose("model.liger_kernel=true", "method=lora_dpo", "dataset=demo_dpo", "hardware.device=cpu")
        )
    for problem in (
        "method.stage=dpo computes its loss in TRL",
        "but hardware.device=cpu",
        "pip install liger-kernel",
    ):
        assert problem in str(refused.value)

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    asked = compose("model.liger_kernel=true", "hardware.device=auto")
    with caplog.at_level(logging.WARNING, logger="llmft.train.sft"):
        assert not uses_liger_kernels(asked)
    assert "training without Liger's kernels" in caplog.text
    # Liger's fused cross-entropy reads the hidden states itself and takes no mask of trained positions.
    model, tokenizer = tiny
    assert batch_collator(asked, tokenizer, model).trained_logits_only
    assert not batch_collator(asked, tokenizer, model, liger=True).trained_logits_only


HEAVY_MODULE = """
OBJECTS = []
for _ in range(50_000):  # like a library's import: many containers that live as long as the process
    node = {}
    node["self"] = node
    OBJECTS.append(node)


def count():
    return len(OBJECTS)
"""


def test_a_chosen_module_imports_with_the_collector_paused_then_frozen(tmp_path, monkeypatch):
    """Start-up: no garbage-collector pass while a task's libraries import, and none walks them later."""
    (tmp_path / "heavy_library.py").write_text(HEAVY_MODULE)
    monkeypatch.syspath_prepend(tmp_path)
    passes = []
    gc.callbacks.append(lambda phase, info: passes.append(info["generation"]) if phase == "start" else None)
    frozen_before = gc.get_freeze_count()
    try:
        count = import_entry_point("heavy_library:count")
        frozen = gc.get_freeze_count() - frozen_before
    finally:
        gc.callbacks.pop()
        sys.modules.pop("heavy_library", None)
        gc.unfreeze()  # this test process may collect them again
    assert count() == 50_000
    assert passes == [], f"the collector ran {len(passes)} times during the import"
    assert frozen >= 50_000 and gc.isenabled()


UNUSED_BY_PLAIN_SFT = (
    "bitsandbytes",
    "scipy",
    "mlflow",
    "vllm",
    "fastapi",
    "wandb",
    "optuna",
    "tensorboard",
    "trl",
)
LOADED_AFTER_A_RUN = """
import json, sys
sys.path.insert(0, "tests")
from conftest import compose
from llmft.main import run
run(compose(*sys.argv[2:]), run_dir=sys.argv[1])
print(json.dumps(sorted(name for name, module in sys.modules.items() if module is not None)))
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("stage", "used"), [((), set()), (("method=lora_dpo", "dataset=demo_dpo"), {"trl"})], ids=["sft", "dpo"]
)
def test_a_plain_run_imports_nothing_it_does_not_use(tmp_path, stage, used):
    """In a fresh process, as `python run.py logger=none` runs: the modules loaded once training ended.
    DPO runs in TRL, whose trainers import wandb wherever it is installed, unless llmft hides it."""
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            LOADED_AFTER_A_RUN,
            str(tmp_path),
            "logger=none",
            "method.max_steps=1",
            *stage,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = {name.split(".")[0] for name in json.loads(result.stdout.splitlines()[-1])}
    assert {"transformers", "peft", "torch", *used} <= loaded  # the check sees the real imports
    unused = set(UNUSED_BY_PLAIN_SFT) - used
    assert not loaded & unused, loaded & unused


IMPORTS_IF_INSTALLED = """
import importlib.util
if importlib.util.find_spec("some_tracker"):  # as TRL does with wandb: `if is_wandb_available(): import wandb`
    import some_tracker

def is_some_tracker_available():
    return importlib.util.find_spec("some_tracker") is not None

def current_run():
    return some_tracker.run if is_some_tracker_available() else None
"""


def test_a_module_imported_while_a_package_was_hidden_uses_it_in_later_runs(tmp_path, monkeypatch):
    """A run hides an unused tracker; a later run in the same process (a sweep's next job) that uses it
    finds it bound where a library skipped it, instead of a NameError."""
    (tmp_path / "some_tracker.py").write_text("run = 'the active run'\n")
    (tmp_path / "reports_to_it.py").write_text(IMPORTS_IF_INSTALLED)
    monkeypatch.syspath_prepend(tmp_path)
    monkeypatch.setattr(optional, "IMPORTED_IF_INSTALLED", {"some_tracker": "is_some_tracker_available"})
    try:
        with optional.packages_hidden(["some_tracker"]):
            import reports_to_it

            assert sys.modules["some_tracker"] is None and "some_tracker" not in vars(reports_to_it)
        assert "some_tracker" not in sys.modules  # still not imported: the run paid nothing for it
        assert reports_to_it.current_run() == "the active run"
    finally:
        sys.modules.pop("reports_to_it", None)
        sys.modules.pop("some_tracker", None)
    assert "wandb" in optional.unused_packages(compose("logger=none"))
    assert "wandb" not in optional.unused_packages(compose("logger=wandb"))


@pytest.mark.slow
def test_the_benchmark_reports_every_figure(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "llmft.bench",
            "--smoke",
            "--workloads",
            "sft_packed,dpo",
            "--set",
            "method.lora_dropout=0.05",  # the benchmark's own setting is 0.0
            "--out",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    records = [json.loads(line) for line in (tmp_path / "bench.jsonl").read_text().splitlines()]
    summaries = {record["workload"]: record for record in records if record.get("summary")}
    runs = [record for record in records if not record.get("summary")]
    assert len(runs) == 4 and all(0 < run["mfu"] < 1 and run["matmul_gflops"] > 0 for run in runs)
    overhead = summaries.pop("tiny_step_overhead")
    # a figure, not a timing test: on a busy machine a few tiny steps can time below their forward + backward
    assert overhead["step_ms"] > 0 and overhead["forward_backward_ms"] > 0
    assert overhead["step_overhead_ms"] == pytest.approx(
        overhead["step_ms"] - overhead["forward_backward_ms"], abs=0.011
    )
    assert set(summaries) == {"sft_packed", "dpo"}
    run_dirs = sorted((tmp_path / "runs").glob("*-0-*"))  # every run trained with the extra override
    assert len(run_dirs) == 4
    assert all("method.lora_dropout=0.05" in (d / ".hydra" / "overrides.yaml").read_text() for d in run_dirs)
    for summary in summaries.values():
        for figure in (
            "tokens_per_second",
            "mfu",
            "matmul_gflops",
            "first_step_s_cold",
            "first_step_s_warm",
            "preprocess_rows_per_s_cold",
            "preprocess_rows_per_s_cached",
            "peak_rss_mb",
            "final_loss",
        ):
            assert isinstance(summary[figure], int | float) and summary[figure] > 0, (figure, summary)
        assert 0 < summary["mfu"] < 1
    assert "| sft_packed |" in result.stdout and "| dpo |" in result.stdout and "overhead" in result.stdout
