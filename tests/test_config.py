"""Composition and validation: every shipped config works, every mistake is named before torch loads."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys

import pytest
from conftest import CONF_DIR, compose, run_cli
from hydra.errors import ConfigCompositionException, MissingConfigException

from llmft.config.errors import ConfigError
from llmft.config.errors import explain as explain_failure
from llmft.main import check

GROUPS = sorted(p.name for p in CONF_DIR.iterdir() if p.is_dir() and p.name != "hydra")


def shipped_options():
    for group in GROUPS:
        for yaml in sorted((CONF_DIR / group).glob("*.yaml")):
            yield group, yaml.stem


# Choices an option only makes sense with: a preference method needs preference data, and so on.
COMPANIONS = {
    ("quantization", "bnb_4bit"): ["method=lora_sft"],
    ("quantization", "bnb_8bit"): ["method=lora_sft"],
    ("dataset", "demo_dpo"): ["method=lora_dpo"],
    ("dataset", "demo_kto"): ["method=lora_kto"],
}
STAGE_DATASETS = {"pt": "demo_pt", "rm": "demo_dpo", "dpo": "demo_dpo", "kto": "demo_kto"}
# Options that need a package this machine may lack, or inputs only the user can give: they must
# compose, and validation must name what is missing and how to get it.
NEEDS_PACKAGE = {
    ("quantization", "gptq"): ("gptqmodel", "pip install optimum gptqmodel"),
    ("quantization", "awq"): ("gptqmodel", "pip install gptqmodel"),
    ("hardware", "deepspeed_z2"): ("deepspeed", "pip install deepspeed"),
    ("hardware", "deepspeed_z3"): ("deepspeed", "pip install deepspeed"),
    ("hardware", "deepspeed_z3_offload"): ("deepspeed", "pip install deepspeed"),
}
NEEDS_INPUT = {
    ("task", "export"): "task=export needs task.export_dir=<directory>",
    ("task", "pipeline"): "task=pipeline needs task.steps",
}


def companions(group: str, option: str) -> list[str]:
    if group == "method":
        stage = compose(f"method={option}").method.stage
        return [f"dataset={STAGE_DATASETS[stage]}"] if stage in STAGE_DATASETS else []
    return COMPANIONS.get((group, option), [])


def expected_rejection(group: str, option: str) -> str | None:
    if (group, option) in NEEDS_PACKAGE:
        package, fix = NEEDS_PACKAGE[group, option]
        return fix if importlib.util.find_spec(package) is None else None
    return NEEDS_INPUT.get((group, option))


@pytest.mark.parametrize(("group", "option"), list(shipped_options()))
def test_every_shipped_option_composes_and_validates(group, option):
    cfg = compose(f"{group}={option}", *companions(group, option))
    rejection = expected_rejection(group, option)
    if rejection is None:
        check(cfg)
    else:
        with pytest.raises(ConfigError, match=re.escape(rejection)):
            check(cfg)


def test_several_datasets_are_selected_at_once():
    cfg = compose("dataset=[demo_sft,demo_sharegpt]")
    assert list(cfg.dataset) == ["demo_sft", "demo_sharegpt"]
    assert cfg.dataset.demo_sharegpt.formatting == "sharegpt"


def explain(*overrides: str) -> str:
    with pytest.raises((ConfigCompositionException, MissingConfigException)) as failure:
        compose(*overrides)
    return explain_failure(failure.value)


def test_misspelled_key_on_the_command_line_names_key_group_and_suggestion():
    message = explain("method.lerning_rate=1e-4")
    assert "method.lerning_rate" in message and "group 'method'" in message
    assert "Did you mean 'learning_rate'" in message


def test_misspelled_key_inside_a_dataset_entry():
    message = explain("dataset.demo_sft.formating=sharegpt")
    assert "Did you mean 'formatting'" in message


def test_misspelled_key_in_a_yaml_file_names_the_file(tmp_path):
    (tmp_path / "method").mkdir()
    (tmp_path / "method" / "my_method.yaml").write_text("stage: sft\nlerning_rate: 1.0e-4\n")
    message = explain(f"hydra.searchpath=[file://{tmp_path}]", "method=my_method")
    assert "conf/method/my_method.yaml" in message
    assert "Did you mean 'learning_rate'" in message


def test_wrong_type_names_the_key_and_the_expected_type():
    message = explain("method.lora_rank=eight")
    assert "method.lora_rank" in message and "expects integer" in message


def test_unknown_group_option_suggests_the_nearest():
    message = explain("method=lora_sfft")
    assert "Unknown option 'lora_sfft' for config group 'method'" in message
    assert "Did you mean 'lora_sft'" in message


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["quantization=bnb_4bit", "method=full_sft"], "quantization=bnb_4bit needs LoRA"),
        (["quantization=bnb_8bit", "method=freeze_sft"], "quantization=bnb_8bit needs LoRA"),
        (["method.finetuning_type=lora4"], "Did you mean 'lora'"),
        (["dataset.demo_sft.path=no/such/file.json"], "file 'no/such/file.json' not found"),
        (["dataset=[demo_sft,demo_sharegpt]", "data.interleave_probs=[1.0]"], "one probability per dataset"),
        (["+lerning_rate=1"], "Unknown top-level key 'lerning_rate'"),
        (["hardware=cpu", "hardware.precision=fp16"], "fp16 is not supported on the CPU"),
    ],
)
def test_impossible_or_invalid_settings_are_rejected_before_training(overrides, expected):
    with pytest.raises(ConfigError, match=expected.replace("(", r"\(").replace("[", r"\[")):
        check(compose(*overrides))


def test_cli_config_error_is_one_clear_message_and_no_torch():
    result = run_cli("method.lerning_rate=1e-4", python_flags=("-X", "importtime"))
    assert result.returncode == 2
    assert "llmft: config error: Unknown config key 'method.lerning_rate'" in result.stderr
    assert "Traceback" not in result.stderr
    imported = {
        line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if "import time:" in line
    }
    assert "hydra" in imported and "torch" not in imported


def test_a_stage_knob_the_chosen_stage_ignores_is_named_with_the_stage(caplog):
    with caplog.at_level("WARNING", logger="llmft.checks.validate"):
        check(compose("method.pref_beta=0.5"))  # a dpo/kto knob, on the default sft method
        check(compose("method=lora_dpo", "dataset=demo_dpo", "method.pref_beta=0.5"))  # read by dpo: silent
    assert [record.getMessage() for record in caplog.records] == [
        "method.pref_beta=0.5 is ignored by method.stage=sft (it applies to dpo, kto): drop it, or pick a "
        "method of that stage."
    ]


DEEP_LEARNING_PACKAGES = ("torch", "transformers", "trl", "peft", "datasets")


def test_composing_and_checking_a_config_imports_no_deep_learning_library():
    """Every module of llmft.config and llmft.checks (and the domain facts they read), imported in a fresh
    interpreter, leaves torch, transformers, trl, peft and datasets unloaded: validation stays quick."""
    probe = f"""
import importlib, pkgutil, sys
import llmft.checks, llmft.config
for package in (llmft.config, llmft.checks):
    for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        importlib.import_module(module.name)
print(sorted(name for name in {DEEP_LEARNING_PACKAGES!r} if name in sys.modules))
"""
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_cli_prints_the_composed_config_and_the_groups():
    job = run_cli("--cfg", "job", "method.lora_rank=16")
    assert job.returncode == 0 and "lora_rank: 16" in job.stdout
    help_text = run_cli("--help").stdout
    for group in ("model", "method", "dataset", "quantization", "hardware", "logger", "task"):
        assert f"{group}:" in help_text
    assert "llama3" in help_text and "lora_sft" in help_text


EXPERIMENTS = sorted(p.stem for p in (CONF_DIR.parent / "experiments" / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_recipe_composes_and_validates(name):
    cfg = compose(f"+experiment={name}")
    check(cfg)
    assert cfg.method.stage  # the recipe landed at the top level, not under an `experiment` key
    assert "experiment" not in cfg


def test_listing_the_groups_copies_no_stored_config(monkeypatch):
    """--help lists every group's options; Hydra copied every stored config for each (2 s), now none."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import DictConfig

    from llmft.config import register_schema

    register_schema()
    copies = []
    copy_config = DictConfig.__deepcopy__
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        monkeypatch.setattr(
            DictConfig, "__deepcopy__", lambda node, memo: copies.append(node) or copy_config(node, memo)
        )
        groups = GlobalHydra.instance().hydra.list_all_config_groups()
    assert {"model", "method", "dataset", "hardware"} <= set(groups)
    assert copies == []
