"""Coming from LLaMA-Factory: its dataset_info.json and training YAMLs migrate (python -m llmft.migrate),
compose and train; its template names work as model.template; .txt files are one sample per line."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, compose, run_cli, train_test_tokenizer

from llmft.config.errors import ConfigError
from llmft.data.loader import load_one
from llmft.data.templates import TEMPLATES, apply_template
from llmft.main import check, run
from llmft.migrate.__main__ import main as migrate
from llmft.track.run_files import read_log

THINGS = "cat dog sun tree book fish bird milk".split()
ROWS = 2  # per dataset: every training step below sees every row of every dataset


def _write(path: Path, rows: list) -> None:
    text = "\n".join(json.dumps(row) for row in rows) if path.suffix == ".jsonl" else json.dumps(rows)
    path.write_text(text, encoding="utf-8")


# One file and one registry entry of every kind LLaMA-Factory's data/README.md documents.
DATA = {
    "alpaca.json": [{"instruction": f"Name a {t}.", "input": "", "output": f"A {t}."} for t in THINGS[:ROWS]],
    "alpaca_history.json": [
        {
            "instruction": f"And a {t}?",
            "input": "quickly",
            "output": f"A {t}.",
            "system": "Be brief.",
            "history": [["Hello.", "Hi."], ["Ready?", "Yes."]],
        }
        for t in THINGS[:ROWS]
    ],
    "sharegpt_tags.json": [
        {
            "dialog": [
                {"speaker": "sys", "text": "Answer in one word."},
                {"speaker": "person", "text": f"What is a {t}?"},
                {"speaker": "bot", "text": t.capitalize()},
            ]
        }
        for t in THINGS[:ROWS]
    ],
    "openai.jsonl": [
        {
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": f"Spell {t}."},
                {"role": "assistant", "content": "-".join(t)},
            ]
        }
        for t in THINGS[:ROWS]
    ],
    "tools.json": [
        {
            "conversations": [
                {"from": "human", "value": f"How many {t}s are there?"},
                {"from": "function_call", "value": json.dumps({"name": "count", "arguments": {"thing": t}})},
                {"from": "observation", "value": "3"},
                {"from": "gpt", "value": f"There are 3 {t}s."},
            ],
            "tools": json.dumps([{"name": "count", "description": "Count things", "parameters": {}}]),
        }
        for t in THINGS[:ROWS]
    ],
    "dpo_alpaca.json": [
        {"instruction": f"Describe the {t}.", "input": "", "chosen": f"The {t} is good.", "rejected": "Bad."}
        for t in THINGS[:ROWS]
    ],
    "dpo_sharegpt.json": [
        {
            "conversations": [{"from": "human", "value": f"Is the {t} nice?"}],
            "chosen": {"from": "gpt", "value": f"The {t} is nice."},
            "rejected": {"from": "gpt", "value": "No."},
        }
        for t in THINGS[:ROWS]
    ],
    "kto.json": [
        {
            "messages": [
                {"role": "user", "content": f"Rate the {t}."},
                {"role": "assistant", "content": reply},
            ],
            "label": label,
        }
        for t in THINGS[:ROWS]
        for reply, label in (("It is good.", True), ("Whatever.", False))
    ],
    "wiki.txt": "\n".join(
        f"The {t} sat in the sun all day long.\n" for t in THINGS[:ROWS]
    ),  # blank lines between
    "c4.jsonl": [{"text": f"A {t} is a thing people like to talk about."} for t in THINGS[:ROWS]],
}
REGISTRY = {
    "alpaca": {"file_name": "alpaca.json"},
    "alpaca_history": {
        "file_name": "alpaca_history.json",
        "columns": {"prompt": "instruction", "query": "input", "response": "output", "system": "system", "history": "history"},
    },
    "sharegpt_tags": {
        "file_name": "sharegpt_tags.json",
        "formatting": "sharegpt",
        "columns": {"messages": "dialog"},
        "tags": {"role_tag": "speaker", "content_tag": "text", "user_tag": "person", "assistant_tag": "bot", "system_tag": "sys"},
    },
    "openai_messages": {
        "file_name": "openai.jsonl",
        "formatting": "sharegpt",
        "columns": {"messages": "messages"},
        "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant", "system_tag": "system"},
    },
    "tools": {"file_name": "tools.json", "formatting": "sharegpt", "columns": {"messages": "conversations", "tools": "tools"}},
    "dpo_alpaca": {
        "file_name": "dpo_alpaca.json",
        "ranking": True,
        "columns": {"prompt": "instruction", "query": "input", "chosen": "chosen", "rejected": "rejected"},
    },
    "dpo_sharegpt": {
        "file_name": "dpo_sharegpt.json",
        "ranking": True,
        "formatting": "sharegpt",
        "columns": {"messages": "conversations", "chosen": "chosen", "rejected": "rejected"},
    },
    "kto": {
        "file_name": "kto.json",
        "formatting": "sharegpt",
        "columns": {"messages": "messages", "kto_tag": "label"},
        "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"},
    },
    "wiki_demo": {"file_name": "wiki.txt", "columns": {"prompt": "text"}},
    "c4_demo": {"file_name": "c4.jsonl", "columns": {"prompt": "text"}},
    "belle_0.5m": {"hf_hub_url": "BelleGroup/train_0.5M_CN", "ms_hub_url": "AI-ModelScope/train_0.5M_CN", "split": "train"},
    "deepctrl": {"ms_hub_url": "deepctrl/deepctrl-sft-data"},
    "starcoder_python": {"hf_hub_url": "bigcode/starcoderdata", "columns": {"prompt": "content"}, "folder": "python"},
    "mllm_demo": {"file_name": "mllm.json", "formatting": "sharegpt", "columns": {"messages": "messages", "images": "images"}},
    "belle_multiturn": {"script_url": "belle_multiturn", "formatting": "sharegpt"},
}  # fmt: skip
STAGE_DATASETS = {
    "sft": ["alpaca", "alpaca_history", "sharegpt_tags", "openai_messages", "tools"],
    "dpo": ["dpo_alpaca", "dpo_sharegpt"],
    "kto": ["kto"],
    "pt": ["wiki_demo", "c4_demo"],
}


def lf_yaml(stage: str, datasets: list[str], **extra) -> dict:
    """A training YAML with the keys LLaMA-Factory's examples/train_lora/*.yaml use."""
    return {
        "model_name_or_path": "meta-llama/Meta-Llama-3-8B-Instruct",
        "stage": stage,
        "do_train": True,
        "finetuning_type": "lora",
        "lora_target": "all",
        "dataset": ",".join(datasets),
        "template": "llama3",
        "cutoff_len": 256,
        "max_samples": 1000,
        "overwrite_cache": True,
        "preprocessing_num_workers": 16,
        "output_dir": f"saves/llama3-8b/lora/{stage}",
        "logging_steps": 10,
        "save_steps": 500,
        "plot_loss": True,
        "overwrite_output_dir": True,
        "report_to": "none",
        "per_device_train_batch_size": 1,
        "gradient_accumulation_steps": 8,
        "learning_rate": "1e-4",  # as YAML 1.1 reads `1e-4`: text
        "num_train_epochs": 3.0,
        "lr_scheduler_type": "cosine",
        "warmup_ratio": 0.1,
        "bf16": True,
        "ddp_timeout": 180000000,
        **extra,
    }


YAMLS = {
    "lf_sft": lf_yaml("sft", STAGE_DATASETS["sft"], lerning_rate=1e-3, val_size=0.1, eval_strategy="steps"),
    "lf_dpo": lf_yaml("dpo", STAGE_DATASETS["dpo"], pref_beta=0.1, pref_loss="sigmoid"),
    "lf_kto": lf_yaml("kto", STAGE_DATASETS["kto"], pref_beta=0.1),
    "lf_pt": lf_yaml("pt", STAGE_DATASETS["pt"]),
    "lf_qlora": lf_yaml(
        "sft",
        ["alpaca"],
        model_name_or_path="Qwen/Qwen3-8B",
        template="qwen3",
        quantization_bit=4,
        quantization_method="bitsandbytes",
        lora_rank=16,
    ),
    "lf_full_ds": {
        **lf_yaml(
            "sft", ["alpaca"], finetuning_type="full", deepspeed="examples/deepspeed/ds_z3_config.json"
        ),
        "lora_target": None,
    },
}


@pytest.fixture(scope="module")
def lf(tmp_path_factory) -> dict:
    """A LLaMA-Factory project on disk, migrated into a config folder Hydra searches (conf/dataset and
    experiment/ beside each other, as in llmft's own tree)."""
    root = tmp_path_factory.mktemp("lf")
    data, conf = root / "data", root / "conf"
    data.mkdir()
    for name, rows in DATA.items():
        if isinstance(rows, str):
            (data / name).write_text(rows, encoding="utf-8")
        else:
            _write(data / name, rows)
    (data / "dataset_info.json").write_text(json.dumps(REGISTRY), encoding="utf-8")
    converted = subprocess.run(  # the command a user types
        [sys.executable, "-m", "llmft.migrate", "dataset-info", str(data / "dataset_info.json"), "--out", str(conf / "dataset")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert converted.returncode == 0, converted.stderr
    printed = {}
    for name, settings in YAMLS.items():
        source = root / f"{name}.yaml"
        source.write_text(
            yaml.safe_dump({k: v for k, v in settings.items() if v is not None}), encoding="utf-8"
        )
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = migrate(
                ["train-yaml", str(source), "--out", str(conf / "experiment" / source.name), "--datasets", str(conf / "dataset")]
            )  # fmt: skip
        assert code == 0
        printed[name] = out.getvalue()
    return {"conf": conf, "registry_report": converted.stdout, "printed": printed}


def entry(lf: dict, name: str) -> dict:
    return yaml.safe_load((lf["conf"] / "dataset" / f"{name}.yaml").read_text())[name]


def searchpath(lf: dict) -> str:
    return f"hydra.searchpath=[file://{lf['conf']}]"


def test_every_documented_registry_entry_converts_and_the_rest_are_named_with_the_reason(lf):
    written = {path.stem for path in (lf["conf"] / "dataset").glob("*.yaml")}
    local = {name for names in STAGE_DATASETS.values() for name in names}
    assert written == local | {
        "belle_0_5m",
        "deepctrl",
        "starcoder_python",
    }  # 'belle_0.5m': a Hydra-safe name
    assert entry(lf, "belle_0_5m") == {
        "path": "BelleGroup/train_0.5M_CN",
        "source": "hub",
        "ms_path": "AI-ModelScope/train_0.5M_CN",  # picked when USE_MODELSCOPE_HUB=1, as in LLaMA-Factory
        "split": "train",
    }
    assert entry(lf, "deepctrl") == {
        "path": "deepctrl/deepctrl-sft-data",
        "source": "hub",
        "hub": "modelscope",
    }
    assert entry(lf, "starcoder_python")["formatting"] == "text"
    assert entry(lf, "starcoder_python")["folder"] == "python"
    assert entry(lf, "wiki_demo")["formatting"] == entry(lf, "c4_demo")["formatting"] == "text"
    assert entry(lf, "sharegpt_tags")["tags"]["user_tag"] == "person"
    assert Path(entry(lf, "alpaca")["path"]).is_absolute()  # resolved against the registry's folder
    report = lf["registry_report"]
    assert "! mllm_demo: images columns: llmft trains text-only models" in report
    assert "! belle_multiturn: a dataset loading script" in report
    composed = compose(searchpath(lf), "dataset=[belle_0_5m,deepctrl]")
    assert composed.dataset.deepctrl.hub == "modelscope" and composed.dataset.belle_0_5m.hub == "auto"


def test_a_txt_file_is_one_sample_per_line_and_blank_lines_are_skipped(lf):
    rows = load_one("wiki_demo", entry(lf, "wiki_demo"), compose().data, seed=0)
    assert rows["text"] == [f"The {t} sat in the sun all day long." for t in THINGS[:ROWS]]


def test_unmapped_keys_are_printed_by_name_with_what_to_do(lf):
    printed = lf["printed"]["lf_sft"]
    assert "! lerning_rate: not a LLaMA-Factory key llmft knows. Did you mean 'learning_rate'" in printed
    assert "! ddp_timeout: llmft keeps torch's default process-group timeout" in printed
    assert "! overwrite_output_dir: llmft resumes from the last checkpoint" in printed
    assert "! preprocessing_num_workers:" in printed
    assert "plot_loss: every llmft run writes loss.png" in printed


def test_the_experiment_composes_with_run_py_cfg_job(lf):
    result = run_cli("+experiment=lf_sft", searchpath(lf), "--cfg", "job", timeout=120)
    assert result.returncode == 0, result.stderr
    job = yaml.safe_load(result.stdout)
    assert job["model"]["name_or_path"] == "meta-llama/Meta-Llama-3-8B-Instruct"
    assert job["model"]["template"] == "llama3"
    assert (job["method"]["stage"], job["method"]["finetuning_type"]) == ("sft", "lora")
    assert job["method"]["learning_rate"] == 1e-4 and job["method"]["warmup_steps"] == 0.1
    assert job["method"]["gradient_accumulation_steps"] == 8 and job["method"]["lora_target"] == "all"
    assert list(job["dataset"]) == STAGE_DATASETS["sft"]
    assert job["data"]["cutoff_len"] == 256 and job["data"]["val_size"] == 0.1
    assert job["hardware"]["precision"] == "bf16"
    assert not any(job["logger"][tracker] for tracker in ("mlflow", "tensorboard", "wandb", "swanlab"))


def test_qlora_and_deepspeed_yamls_pick_the_quantization_and_hardware_presets(lf):
    qlora = compose(searchpath(lf), "+experiment=lf_qlora")
    assert qlora.quantization.method == "bnb_4bit" and qlora.model.name_or_path == "Qwen/Qwen3-8B"
    assert qlora.model.template == "qwen3" and qlora.method.lora_alpha == 32  # LLaMA-Factory: 2 x lora_rank
    full = compose(searchpath(lf), "+experiment=lf_full_ds")
    assert (full.method.finetuning_type, full.hardware.strategy) == ("full", "deepspeed")
    assert full.hardware.deepspeed_config.endswith("zero3.json")
    # This machine has neither a GPU nor the deepspeed package: the check says so before anything loads.
    with pytest.raises(ConfigError, match="hardware.strategy=deepspeed"):
        check(full)


def test_enable_liger_kernel_becomes_model_liger_kernel(lf, tmp_path):
    source = tmp_path / "lf_liger.yaml"
    source.write_text(yaml.safe_dump({**lf_yaml("sft", ["alpaca"]), "enable_liger_kernel": True}))
    with contextlib.redirect_stdout(io.StringIO()):
        migrate(["train-yaml", str(source), "--out", str(lf["conf"] / "experiment" / source.name)])
    assert compose(searchpath(lf), "+experiment=lf_liger").model.liger_kernel is True


@pytest.mark.parametrize(
    ("experiment", "stage", "datasets"),
    [
        ("lf_sft", "sft", STAGE_DATASETS["sft"]),
        ("lf_dpo", "dpo", STAGE_DATASETS["dpo"]),
        ("lf_kto", "kto", STAGE_DATASETS["kto"]),
        ("lf_pt", "pt", STAGE_DATASETS["pt"]),
        ("lf_qlora", "sft", ["alpaca"]),
        ("lf_full_ds", "sft", ["alpaca"]),
    ],
)
def test_a_migrated_yaml_trains_two_steps_on_every_converted_entry(lf, tmp_path, experiment, stage, datasets):
    """The tiny model and CPU stand in for the YAML's model and GPUs; every row of every dataset is in
    each step's batch, so each converted entry trains under the stage it is for."""
    rows = ROWS * len(datasets) * (2 if stage == "kto" else 1)
    cfg = compose(
        searchpath(lf),
        f"+experiment={experiment}",
        "model=tiny",
        "hardware=cpu",
        "hardware.precision=fp32",
        "method.max_steps=2",
        "method.logging_steps=1",
        f"method.per_device_train_batch_size={rows}",
        "method.gradient_accumulation_steps=1",
        "method.gradient_checkpointing=false",
        "data.val_size=0",
    )
    assert cfg.method.stage == stage and list(cfg.dataset) == datasets
    run(cfg, run_dir=tmp_path)
    losses = [record["loss"] for record in read_log(tmp_path) if "loss" in record]
    assert len(losses) == 2 and all(loss == loss for loss in losses)  # two steps, no NaN
    assert (tmp_path / ("model" if experiment == "lf_full_ds" else "adapter")).is_dir()


def test_llama_factory_template_names_select_llmft_templates_or_the_tokenizers_own():
    own = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    tokenizer = train_test_tokenizer(["hello there"], chat_template=own)
    for lf_name, llmft_name in (
        ("qwen", "qwen"),
        ("qwen3_nothink", "qwen3"),
        ("phi", "phi3"),
        ("yi", "chatml"),
    ):
        apply_template(tokenizer, lf_name)
        assert tokenizer.chat_template == TEMPLATES[llmft_name]
    tokenizer.chat_template = own
    apply_template(tokenizer, "deepseek3")  # no llmft template for the family: the model's own is right
    assert tokenizer.chat_template == own
    with pytest.raises(ValueError, match="model.template='lama3' is not a chat template.*llama3"):
        apply_template(tokenizer, "lama3")


INFERENCE_YAMLS = {
    # examples/inference/llama3_lora_sft.yaml
    "chat": {
        "model_name_or_path": "meta-llama/Meta-Llama-3-8B-Instruct",
        "adapter_name_or_path": "saves/llama3-8b/lora/sft",
        "template": "llama3",
        "infer_backend": "huggingface",
        "trust_remote_code": True,
    },
    # examples/train_lora/llama3_lora_predict.yaml
    "predict": {
        **lf_yaml("sft", ["alpaca"]),
        "do_train": False,
        "do_predict": True,
        "predict_with_generate": True,
        "adapter_name_or_path": "saves/llama3-8b/lora/sft",
    },
    # examples/train_lora/llama3_lora_eval.yaml (llamafactory-cli eval)
    "eval": {
        "model_name_or_path": "meta-llama/Meta-Llama-3-8B-Instruct",
        "adapter_name_or_path": "saves/llama3-8b/lora/sft",
        "template": "fewshot",
        "task": "mmlu_test",
        "n_shot": 5,
        "batch_size": 4,
        "lang": "en",
    },
    # examples/merge_lora/llama3_lora_sft.yaml
    "export": {
        "model_name_or_path": "meta-llama/Meta-Llama-3-8B-Instruct",
        "adapter_name_or_path": "saves/llama3-8b/lora/sft",
        "template": "llama3",
        "export_dir": "output/llama3_lora_sft",
        "export_size": 5,
        "export_device": "cpu",
    },
}


@pytest.mark.parametrize("task", INFERENCE_YAMLS)
def test_inference_predict_eval_and_export_yamls_become_experiments_of_that_task(lf, tmp_path, task):
    source = tmp_path / f"lf_{task}.yaml"
    source.write_text(yaml.safe_dump(INFERENCE_YAMLS[task]))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        migrate(["train-yaml", str(source), "--out", str(lf["conf"] / "experiment" / source.name)])
    cfg = compose(searchpath(lf), f"+experiment=lf_{task}")
    assert cfg.task.name == task and cfg.model.adapter_path == "saves/llama3-8b/lora/sft"
    if task == "eval":
        assert (cfg.task.benchmark, cfg.task.eval_split, cfg.task.n_shot) == ("mmlu", "test", 5)
        assert "! lang: llmft's benchmark prompts are English" in out.getvalue()
    if task == "export":
        assert (cfg.task.export_dir, cfg.task.max_shard_size) == ("output/llama3_lora_sft", "5GB")
