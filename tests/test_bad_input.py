"""Mistakes a new user makes, each refused with one clear message naming the key or file, exit code 2,
and no traceback: config mistakes at compose time (before torch), data mistakes before the model
loads, model mistakes as soon as the path or the model is known.

Most cases run `run.py`'s code path in this process (compose, explain_config_errors, llmft.main.run);
one case of each kind runs `python run.py` as a user would.
"""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path

import pytest
from conftest import compose, run_cli

from llmft.checks.ranges import LR_SCHEDULERS
from llmft.config.errors import explain_config_errors

ADAPTERLESS_DIR = "llmft/data/demo"  # a directory that exists but holds no adapter


def data_file(tmp_path: Path, name: str, content: str | bytes) -> str:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return str(path)


def alpaca_rows(count: int) -> str:
    return json.dumps([{"instruction": f"Say {i}.", "input": "", "output": f"{i}!"} for i in range(count)])


# (id, overrides, text the message must contain). `{tmp}` is the test's scratch dir; the files that
# the data cases read are written there by `write_files`.
COMPOSE_TIME = [
    # unknown keys, groups and options
    ("unknown-key", ["method.lerning_rate=1e-4"], "method.lerning_rate"),
    ("unknown-top-level-key", ["+lerning_rate=1"], "lerning_rate"),
    ("unknown-dataset-key", ["dataset.demo_sft.formating=sharegpt"], "formating"),
    ("unknown-data-key", ["data.cutof_len=5"], "data.cutof_len"),
    ("unknown-method", ["method=lora_sfft"], "lora_sfft"),
    ("unknown-model", ["model=llama4"], "llama4"),
    ("unknown-dataset", ["dataset=no_such_dataset"], "no_such_dataset"),
    ("unknown-hardware-device", ["hardware.device=tpu"], "hardware.device"),
    ("unknown-finetuning-type", ["method.finetuning_type=lora4"], "method.finetuning_type"),
    ("unknown-scheduler", ["method.lr_scheduler_type=cosin"], "method.lr_scheduler_type"),
    ("unknown-template", ["model.template=chatmlx"], "model.template"),
    ("unknown-formatting", ["dataset.demo_sft.formatting=yaml"], "dataset.demo_sft"),
    # wrong types
    ("rank-not-a-number", ["method.lora_rank=eight"], "method.lora_rank"),
    ("cutoff-not-a-number", ["data.cutoff_len=long"], "data.cutoff_len"),
    # values out of range
    ("cutoff-zero", ["data.cutoff_len=0"], "data.cutoff_len=0"),
    ("cutoff-negative", ["data.cutoff_len=-5"], "data.cutoff_len=-5"),
    ("cutoff-one", ["data.cutoff_len=1"], "data.cutoff_len=1"),
    ("lora-rank-zero", ["method.lora_rank=0"], "method.lora_rank=0"),
    ("lora-alpha-zero", ["method.lora_alpha=0"], "method.lora_alpha=0"),
    ("lora-dropout-over-one", ["method.lora_dropout=1.5"], "method.lora_dropout=1.5"),
    ("batch-size-zero", ["method.per_device_train_batch_size=0"], "method.per_device_train_batch_size=0"),
    ("eval-batch-size-zero", ["method.per_device_eval_batch_size=0"], "method.per_device_eval_batch_size=0"),
    ("accumulation-zero", ["method.gradient_accumulation_steps=0"], "method.gradient_accumulation_steps=0"),
    ("learning-rate-negative", ["method.learning_rate=-1e-4"], "method.learning_rate=-0.0001"),
    ("learning-rate-zero", ["method.learning_rate=0"], "method.learning_rate=0"),
    ("warmup-negative", ["method.warmup_steps=-10"], "method.warmup_steps=-10"),
    ("weight-decay-negative", ["method.weight_decay=-0.1"], "method.weight_decay=-0.1"),
    ("logging-steps-zero", ["method.logging_steps=0"], "method.logging_steps=0"),
    ("save-steps-zero", ["method.save_steps=0"], "method.save_steps=0"),
    ("max-samples-zero", ["data.max_samples=0"], "data.max_samples=0"),
    ("val-size-negative", ["data.val_size=-0.1"], "data.val_size=-0.1"),
    ("nothing-to-train", ["method.max_steps=0", "method.num_train_epochs=0"], "method.max_steps"),
    ("top-p-zero", ["generation.top_p=0"], "generation.top_p=0"),
    ("port-out-of-range", ["task=serve", "task.port=70000"], "task.port=70000"),
    ("port-zero", ["task=serve", "task.port=0"], "task.port=0"),
    ("concurrency-zero", ["task=serve", "task.max_concurrent_requests=0"], "task.max_concurrent_requests=0"),
    # impossible combinations
    ("qlora-full", ["quantization=bnb_4bit", "method=full_sft"], "quantization=bnb_4bit needs LoRA"),
    (
        "freeze-nothing",
        ["method=freeze_sft", "method.freeze_trainable_layers=0"],
        "method.freeze_trainable_layers",
    ),
    ("fp16-on-cpu", ["hardware=cpu", "hardware.precision=fp16"], "hardware.precision=fp16"),
    (
        "probs-per-dataset",
        ["dataset=[demo_sft,demo_sharegpt]", "data.interleave_probs=[1.0]"],
        "interleave_probs",
    ),
    ("rl-without-reward", ["method=lora_grpo", "method.reward_funcs=[]"], "method.reward_funcs"),
    ("pissa-and-adapter", ["method.pissa_init=true", f"model.adapter_path={ADAPTERLESS_DIR}"], "pissa_init"),
    # the wrong data for the stage
    ("dpo-on-sft-data", ["method=lora_dpo", "dataset=demo_sft"], "dataset.demo_sft"),
    ("rm-on-sft-data", ["method=lora_rm", "dataset=demo_sft"], "dataset.demo_sft"),
    ("pt-on-chat-data", ["method=lora_pt", "dataset=demo_sft"], "dataset.demo_sft"),
    ("kto-on-sft-data", ["method=lora_kto", "dataset=demo_sft"], "dataset.demo_sft"),
    ("sft-on-pairs", ["dataset=demo_dpo"], "dataset.demo_dpo"),
    # missing model, adapter, reward model directories and data files
    ("missing-model-dir", ["model.name_or_path=/a/missing/dir"], "/a/missing/dir"),
    ("missing-model-dir-relative", ["model=llama3", "model.name_or_path=./models/llama"], "./models/llama"),
    ("missing-adapter", ["model.adapter_path=/no/such/adapter"], "model.adapter_path"),
    ("adapter-dir-without-adapter", [f"model.adapter_path={ADAPTERLESS_DIR}"], "adapter_config.json"),
    ("chat-missing-adapter", ["task=chat", "model.adapter_path=/no/such/adapter"], "model.adapter_path"),
    ("missing-reward-model", ["method=lora_ppo", "method.reward_model=/no/rm"], "method.reward_model"),
    ("missing-data-file", ["dataset.demo_sft.path=no/such/file.json"], "no/such/file.json"),
    ("data-file-wrong-extension", ["dataset.demo_sft.path={tmp}/notes.docx"], "notes.docx"),
]

BEFORE_THE_MODEL = [  # data mistakes: found by reading the data, before any weight loads
    ("empty-data-file", ["dataset.demo_sft.path={tmp}/empty.json"], "empty.json"),
    ("empty-list-data-file", ["dataset.demo_sft.path={tmp}/no_rows.json"], "no_rows.json"),
    ("malformed-json", ["dataset.demo_sft.path={tmp}/broken.json"], "broken.json"),
    ("malformed-jsonl", ["dataset.demo_sft.path={tmp}/broken.jsonl"], "broken.jsonl"),
    ("not-parquet", ["dataset.demo_sft.path={tmp}/text.parquet"], "text.parquet"),
    ("data-folder-without-data", ["dataset.demo_sft.path={tmp}/folder.json"], "folder.json"),
    ("missing-column", ["dataset.demo_sft.path={tmp}/questions.json"], "'instruction'"),
    ("column-mapped-to-nothing", ["dataset.demo_sft.columns.prompt=question"], "'question'"),
    ("malformed-row", ["dataset.demo_sft.path={tmp}/null_output.json"], "row 1"),
    (
        "dpo-empty-pairs-file",
        ["method=lora_dpo", "dataset=demo_dpo", "dataset.demo_dpo.path={tmp}/empty.json"],
        "empty.json",
    ),
    (
        "dpo-pairs-without-chosen",
        ["method=lora_dpo", "dataset=demo_dpo", "dataset.demo_dpo.path={tmp}/three_rows.json"],
        "'chosen'",
    ),
    (
        "kto-without-label-column",
        ["method=lora_kto", "dataset=demo_kto", "dataset.demo_kto.path={tmp}/three_rows.json"],
        "'label'",
    ),
    (
        "val-size-over-the-data",
        ["dataset.demo_sft.path={tmp}/three_rows.json", "data.val_size=5"],
        "data.val_size",
    ),
]

MODEL_KNOWN = [  # model mistakes: found once the model is known
    ("lora-target-matches-nothing", ["method.lora_target=[nope_proj]"], "method.lora_target"),
    ("preset-lora-target-matches-nothing", ["model.lora_target=[nope_proj]"], "model.lora_target"),
    (
        "more-freeze-layers-than-the-model",
        ["method=freeze_sft", "method.freeze_trainable_layers=10"],
        "has 2",
    ),
    ("unknown-freeze-module", ["method=freeze_sft", "method.freeze_trainable_modules=[nope]"], "nope"),
    ("unknown-freeze-extra-module", ["method=freeze_sft", "method.freeze_extra_modules=[nope]"], "nope"),
]

PORT_TAKEN = [("port-taken", ["task=serve", "task.port={port}"], "task.port={port}")]


@pytest.fixture(autouse=True)
def no_stale_log_handler_noise(monkeypatch):
    """A log handler an earlier in-process run bound to a since-closed capture stream would print
    '--- Logging error ---' with a traceback into this test's capture; a real run has no such handler."""
    monkeypatch.setattr(logging, "raiseExceptions", False)


@pytest.fixture
def scratch(tmp_path):
    """The files the data cases read, and a port something already listens on."""
    data_file(tmp_path, "notes.docx", "hello")
    data_file(tmp_path, "empty.json", "")
    data_file(tmp_path, "no_rows.json", "[]")
    data_file(tmp_path, "broken.json", '[{"instruction": "hi", "output": ')
    data_file(tmp_path, "broken.jsonl", '{"instruction": "hi", "output": "yo"}\n{"instruction": \n')
    data_file(tmp_path, "text.parquet", "this is not parquet")
    (tmp_path / "folder.json").mkdir()
    data_file(tmp_path, "questions.json", json.dumps([{"question": "hi", "answer": "yo"}] * 4))
    rows = json.loads(alpaca_rows(4))
    rows[1]["output"] = None
    data_file(tmp_path, "null_output.json", json.dumps(rows))
    data_file(tmp_path, "three_rows.json", alpaca_rows(3))
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield tmp_path, listener.getsockname()[1]


def expand(items: list[str], tmp: Path, port: int) -> list[str]:
    return [item.format(tmp=tmp, port=port) for item in items]


def refused_in_process(capsys, overrides: list[str], run_dir: Path) -> tuple[int, str]:
    """`python run.py <overrides>` in this process: the exit code and what it printed on stderr."""
    from llmft.main import run

    with pytest.raises(SystemExit) as exited, explain_config_errors():
        run(compose("logger=none", "method.max_steps=1", *overrides), run_dir)  # accepted by mistake: 1 step
    return exited.value.code, capsys.readouterr().err


def assert_refused(code: int, stderr: str, label: str, named: str) -> None:
    assert code == 2, stderr
    assert "Traceback" not in stderr, stderr
    message = stderr[stderr.index("llmft: ") :]
    assert message.startswith(f"llmft: {label}: "), stderr
    assert named in message, stderr


def cases(table, label):
    return [pytest.param(overrides, named, label, id=case) for case, overrides, named in table]


@pytest.mark.parametrize(
    ("overrides", "named", "label"),
    cases(COMPOSE_TIME, "config error")
    + cases(BEFORE_THE_MODEL, "data error")
    + cases(MODEL_KNOWN, "model error")
    + cases(PORT_TAKEN, "config error"),
)
def test_bad_input_is_one_clear_error_with_exit_code_2(capsys, scratch, overrides, named, label):
    tmp, port = scratch
    code, stderr = refused_in_process(capsys, expand(overrides, tmp, port), tmp / "run")
    assert_refused(code, stderr, label, named.format(port=port))


def test_data_mistakes_stop_before_the_model_loads(capsys, scratch, monkeypatch):
    """Reading the data comes first: a broken file is reported without any model being loaded."""
    import llmft.train.components as components

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded before the data was checked")

    monkeypatch.setattr(components, "load_model", no_model)
    tmp, port = scratch
    for _, overrides, named in BEFORE_THE_MODEL:
        code, stderr = refused_in_process(capsys, expand(overrides, tmp, port), tmp / "run")
        assert_refused(code, stderr, "data error", named)


def test_too_many_freeze_layers_stop_before_the_weights_load(capsys, scratch, monkeypatch):
    import llmft.train.components as components

    def no_weights(*args, **kwargs):
        raise AssertionError("the weights were loaded before the layer count was checked")

    monkeypatch.setattr(components, "load_model", no_weights)
    tmp, _ = scratch
    overrides = ["method=freeze_sft", "method.freeze_trainable_layers=-10"]
    code, stderr = refused_in_process(capsys, overrides, tmp / "run")
    assert_refused(code, stderr, "model error", "method.freeze_trainable_layers=-10")


def test_the_scheduler_list_is_transformers_own():
    from transformers.trainer_utils import SchedulerType

    assert set(LR_SCHEDULERS) == {kind.value for kind in SchedulerType}


SUBPROCESS_CASES = {  # one of each kind, as a user types it: case -> the label of its message
    "cutoff-one": "config error",
    "qlora-full": "config error",
    "dpo-on-sft-data": "config error",
    "missing-model-dir": "config error",
    "empty-data-file": "data error",
    "lora-target-matches-nothing": "model error",
    "port-taken": "config error",
}


@pytest.mark.slow
@pytest.mark.parametrize(("case", "label"), list(SUBPROCESS_CASES.items()))
def test_run_py_refuses_bad_input_in_one_line(scratch, case, label):
    tmp, port = scratch
    every_case = COMPOSE_TIME + BEFORE_THE_MODEL + MODEL_KNOWN + PORT_TAKEN
    overrides, named = next((overrides, named) for name, overrides, named in every_case if name == case)
    result = run_cli(*expand(overrides, tmp, port), f"hydra.run.dir={tmp / 'run'}", timeout=300)
    assert_refused(result.returncode, result.stderr, label, named.format(port=port))
