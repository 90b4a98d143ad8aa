"""The skills benchmark (generated, shipped) and the tiny_skills experiment: pre-train -> fine-tune -> score."""

from __future__ import annotations

import json

import pytest
from conftest import ROOT, compose, run_cli

from llmft.data.skills.generate import SKILLS_DIR, generate
from llmft.evaluate.suites import layout_problems
from llmft.main import run

SOLVERS = {  # what each skill's answer must be, computed independently of the generator
    "copy": lambda args: args,
    "upper": lambda args: args.upper(),
    "reverse": lambda args: " ".join(reversed(args.split())),
    "sort": lambda args: " ".join(sorted(args.split())),
    "add": lambda args: str(sum(int(n) for n in args.split(" + "))),
}


def test_the_shipped_files_are_what_the_generator_writes(tmp_path):
    written = generate(tmp_path, tmp_path / "skills_mc.jsonl")
    shipped = [SKILLS_DIR / path.name for path in written[:3]] + [
        ROOT / "llmft/evaluate/benchmarks/skills_mc.jsonl"
    ]
    assert [path.read_bytes() for path in written] == [path.read_bytes() for path in shipped]


def test_every_answer_is_right_and_the_test_prompts_are_held_out():
    train = json.loads((SKILLS_DIR / "skills_train.json").read_text())
    test = json.loads((SKILLS_DIR / "skills_test.json").read_text())
    for row in train + test:
        skill, args = row["instruction"].split(": ", 1)
        assert row["output"] == SOLVERS[skill.lower()](args), row
    assert not {row["instruction"] for row in train} & {row["instruction"] for row in test}
    assert {row["skill"] for row in test} == set(SOLVERS)


def test_the_multiple_choice_variant_scores_per_skill(tmp_path):
    cfg = compose(
        "task=eval",
        "logger=none",
        "task.benchmark=skills_mc",
        "task.n_shot=1",
        "task.eval_subjects=[add,copy]",
    )
    assert layout_problems(cfg.task) == []
    run(cfg, run_dir=tmp_path)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["eval_questions"] == 40
    assert metrics["questions/subject/add"] == metrics["questions/subject/copy"] == 20
    assert metrics["questions/category/skills"] == 40


@pytest.mark.slow
def test_a_short_tiny_skills_pipeline_pretrains_finetunes_and_scores(tmp_path):
    result = run_cli(
        "+experiment=tiny_skills",
        "logger=none",
        f"hydra.run.dir={tmp_path}",
        'task.steps.pretrain=["task=train","method=full_pt","dataset=[skills_pt]","method.max_steps=2"]',
        "method=lora_sft",  # the fine-tuning step: its adapter sits on the pre-trained model
        "method.max_steps=2",
        "data.max_samples=4",
        "generation.max_new_tokens=4",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "pretrain" / "model" / "model.safetensors").is_file()  # from scratch: a full model
    adapter_config = json.loads((tmp_path / "finetune" / "adapter" / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == str(tmp_path / "pretrain" / "model")
    predictions = (tmp_path / "evaluate" / "generated_predictions.jsonl").read_text().splitlines()
    assert len(predictions) == 4
    assert json.loads(predictions[0])["label"] == "9 8 5"  # the test split's first row
    metrics = json.loads((tmp_path / "evaluate" / "metrics.json").read_text())
    assert 0 <= metrics["exact_match"] <= 100


def test_a_pipeline_without_steps_fails_at_compose_time():
    from llmft.config.errors import ConfigError
    from llmft.main import check

    with pytest.raises(ConfigError, match=r"task=pipeline needs task.steps"):
        check(compose("task=pipeline"))
    check(compose("+experiment=tiny_skills"))
