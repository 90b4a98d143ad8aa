"""task=eval: multiple-choice accuracy from the model's next-token logits over the choice letters."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest
import torch
from conftest import ROOT, compose

from llmft.config.errors import ConfigError
from llmft.evaluate.benchmark import few_shot_examples, to_question
from llmft.main import check, run

DEMO_MC = ROOT / "llmft" / "evaluate" / "benchmarks" / "demo_mc.jsonl"


def _row(subject, question, choices, answer, split="test"):
    return {"subject": subject, "question": question, "choices": choices, "answer": answer, "split": split}


# Unequal subjects (3 and 5 questions) so a plain mean of the subject accuracies differs from the overall one;
# one 3-choice question and letter answers too.
CUSTOM_ROWS = [
    _row("alpha", "Solved alpha example?", ["yes", "no", "maybe", "never"], 0, "dev"),
    _row("beta", "Solved beta example?", ["up", "down", "left", "right"], "D", "dev"),
    *[_row("alpha", f"Alpha question {i}?", ["red", "green", "blue", "black"], i % 4) for i in range(3)],
    _row("beta", "Beta three-way question?", ["one", "two", "three"], "C"),
    *[_row("beta", f"Beta question {i}?", ["cat", "dog", "cow", "fox"], (i + 1) % 4) for i in range(4)],
]


def _lines(run_dir):
    return [json.loads(line) for line in (run_dir / "benchmark_predictions.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def custom_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("eval_custom")
    path = run_dir / "custom_mc.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in CUSTOM_ROWS))
    cfg = compose("task=eval", "logger=none", f"task.benchmark={path}", "task.n_shot=1", "task.batch_size=3")
    objective = run(cfg, run_dir=run_dir)
    return cfg, run_dir, objective


def test_predictions_are_the_letters_with_the_highest_logit(custom_run):
    from llmft.model.loader import chat_tokenizer, load_model

    cfg, run_dir, objective = custom_run
    lines = _lines(run_dir)
    tokenizer = chat_tokenizer(cfg.model)
    model = load_model(cfg, tokenizer, for_training=False)
    expected = []
    for line in lines:  # one prompt at a time, unpadded: the batched, left-padded harness must agree
        letters = "ABC" if line["id"] == "beta/test-3" else "ABCD"
        ids = torch.tensor([tokenizer(line["prompt"], add_special_tokens=False)["input_ids"]])
        with torch.inference_mode():
            logits = model(input_ids=ids).logits[0, -1]
        letter_ids = [tokenizer.encode(letter, add_special_tokens=False)[-1] for letter in letters]
        expected.append(letters[int(logits[letter_ids].argmax())])
    assert [line["prediction"] for line in lines] == expected

    answers = [line["answer"] for line in lines]
    assert answers == ["A", "B", "C", "C", "B", "C", "D", "A"]  # the file's answers, indices or letters
    share = sum(p == a for p, a in zip(expected, answers, strict=True)) / len(lines)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["accuracy"] == pytest.approx(100 * share)
    assert objective == metrics["accuracy"]  # task.objective=accuracy goes back to sweepers


def test_subject_accuracies_weigh_into_the_overall_one(custom_run):
    _, run_dir, _ = custom_run
    lines = _lines(run_dir)
    assert len(lines) == 8  # one line per test question; dev rows are never scored
    metrics = json.loads((run_dir / "metrics.json").read_text())
    counts = Counter(line["subject"] for line in lines)
    assert counts == {"alpha": 3, "beta": 5}
    for subject, count in counts.items():
        correct = sum(line["correct"] for line in lines if line["subject"] == subject)
        assert metrics[f"accuracy/subject/{subject}"] == pytest.approx(100 * correct / count)
        assert metrics[f"questions/subject/{subject}"] == count
    weighted = sum(metrics[f"accuracy/subject/{s}"] * n for s, n in counts.items()) / len(lines)
    assert metrics["accuracy"] == pytest.approx(weighted)


def test_demo_prompts_hold_n_solved_examples_of_the_same_subject(tmp_path):
    rows = [json.loads(line) for line in DEMO_MC.read_text().splitlines()]
    dev = [row for row in rows if row["split"] == "dev"]
    test_questions = [row for row in rows if row["split"] == "test"]
    cfg = compose("task=eval", "logger=none", "task.n_shot=2", "task.eval_subjects=[capitals,antonyms]")
    run(cfg, run_dir=tmp_path)

    lines = _lines(tmp_path)
    assert len(lines) == sum(row["subject"] in ("capitals", "antonyms") for row in test_questions)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert "accuracy/subject/arithmetic" not in metrics and "accuracy/category/geography" in metrics
    for line, question in zip(
        lines, [q for q in test_questions if q["subject"] != "arithmetic"], strict=True
    ):
        prompt = line["prompt"]
        shown = [row for row in dev if row["question"] in prompt]
        assert len(shown) == 2 and {row["subject"] for row in shown} == {line["subject"]}
        assert prompt.count("\nAnswer: ") == 2  # the solved ones; the question's own ends in "Answer:"
        assert prompt.count(question["question"]) == 1 and prompt.rstrip().endswith("assistant")
        assert not any(row["question"] in prompt for row in test_questions if row is not question)


def test_a_question_is_never_its_own_example():
    dev = [to_question(_row("s", f"q{i}", ["a", "b"], 0, "dev"), "dev", i) for i in range(3)]
    assert [shot.question for shot in few_shot_examples(dev[0], dev, 2)] == ["q1", "q2"]
    with pytest.raises(ValueError, match="task.n_shot=3, but subject 's' has only 2 solved examples"):
        few_shot_examples(dev[0], dev, 3)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "task.benchmark=mmlu_typo",
            "task.benchmark='mmlu_typo' is neither a known benchmark (mmlu, ceval, cmmlu, lm_eval, demo_mc",
        ),
        ("task.benchmark=data/missing_mc.jsonl", "'data/missing_mc.jsonl' is neither a known benchmark"),
        ("task.n_shot=-1", "task.n_shot=-1 must be >= 0"),
    ],
)
def test_bad_benchmark_settings_fail_at_compose_time(override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        check(compose("task=eval", override))
    check(compose("task=eval", "task.benchmark=mmlu"))  # the hub benchmark needs no local file


# A small set whose answers a tiny model can learn: 4 + 8 questions, each letter the answer 3 times.
LEARNED_ROWS = [
    _row(
        "alpha" if i < 4 else "beta",
        f"Which box holds the key, case {i}?",
        ["red", "green", "blue", "black"],
        i % 4,
    )
    for i in range(12)
]


@pytest.fixture(scope="module")
def learned(tmp_path_factory):
    """An adapter (LoRA + the output head) trained on the answers of LEARNED_ROWS, as task=eval renders them."""
    from llmft.evaluate.benchmark import LETTERS, load_split, prompt_text

    root = tmp_path_factory.mktemp("learned")
    benchmark = root / "learned_mc.jsonl"
    benchmark.write_text("".join(json.dumps(row) + "\n" for row in LEARNED_ROWS))
    task = compose("task=eval", f"task.benchmark={benchmark}", "task.n_shot=0").task
    answers = [
        {"instruction": prompt_text(q, [], str(benchmark)), "output": LETTERS[q.answer]}
        for q in load_split(task, "test")
    ]
    (root / "answers.json").write_text(json.dumps(answers))
    train = compose(
        "logger=none",
        "dataset=demo_sft",
        f"dataset.demo_sft.path={root / 'answers.json'}",
        "method.max_steps=120",
        "method.per_device_train_batch_size=12",
        "method.additional_target=[lm_head]",  # trained in full, saved in the adapter
        "method.learning_rate=1e-2",
        "method.save_steps=1000",
        "method.logging_steps=50",
    )
    run(train, run_dir=root / "train")
    return benchmark, root / "train" / "adapter"


def _accuracy(run_dir, benchmark, *overrides):
    cfg = compose("task=eval", "logger=none", f"task.benchmark={benchmark}", "task.n_shot=0", *overrides)
    objective = run(cfg, run_dir=run_dir)
    return objective, json.loads((run_dir / "metrics.json").read_text())


def test_a_model_trained_on_the_answers_scores_them_all_and_the_untrained_one_near_chance(learned, tmp_path):
    benchmark, adapter = learned
    trained, metrics = _accuracy(tmp_path / "trained", benchmark, f"model.adapter_path={adapter}")
    assert trained == metrics["accuracy"] == 100.0
    assert metrics["accuracy/subject/alpha"] == metrics["accuracy/subject/beta"] == 100.0
    assert (metrics["questions/subject/alpha"], metrics["questions/subject/beta"]) == (4, 8)

    untrained, metrics = _accuracy(tmp_path / "untrained", benchmark)
    assert untrained <= 50.0  # 4 choices: chance is 25%
    lines = _lines(tmp_path / "untrained")
    for subject, count in (
        ("alpha", 4),
        ("beta", 8),
    ):  # per subject: the share of its questions answered right
        right = sum(line["correct"] for line in lines if line["subject"] == subject)
        assert metrics[f"accuracy/subject/{subject}"] == pytest.approx(100 * right / count)
    assert metrics["accuracy"] == pytest.approx(100 * sum(line["correct"] for line in lines) / 12)


LM_EVAL_TASK = """\
task: learned_local
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{prompt}}}}"
target_delimiter: ""
doc_to_choice: ["A", "B", "C", "D"]
doc_to_target: "{{{{answer}}}}"
metric_list:
  - metric: acc
"""


def test_lm_eval_scores_a_local_task_with_the_runs_adapter(learned, tmp_path):
    pytest.importorskip("lm_eval")
    from mlflow.tracking import MlflowClient

    benchmark, adapter = learned
    _accuracy(tmp_path / "rendered", benchmark)  # the chat-rendered prompts, as the harness must see them
    docs = [
        {"prompt": line["prompt"], "answer": "ABCD".index(line["answer"])}
        for line in _lines(tmp_path / "rendered")
    ]
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps(doc) + "\n" for doc in docs))
    (tmp_path / "learned_local.yaml").write_text(LM_EVAL_TASK.format(data=tmp_path / "docs.jsonl"))

    store = f"sqlite:///{tmp_path}/mlflow.db"
    cfg = compose(
        "task=eval",
        "task.benchmark=lm_eval",
        f"task.lm_eval_tasks=[{tmp_path / 'learned_local.yaml'}]",
        "task.n_shot=0",
        f"model.adapter_path={adapter}",
        f"logger.tracking_uri={store}",
    )
    objective = run(cfg, run_dir=tmp_path / "lm_eval")
    metrics = json.loads((tmp_path / "lm_eval" / "metrics.json").read_text())
    assert metrics["lm_eval/learned_local/acc"] == 1.0  # the adapter's answers: it was loaded in process
    assert objective == metrics["accuracy"] == 100.0
    [recorded] = MlflowClient(tracking_uri=store).search_runs(
        [e.experiment_id for e in MlflowClient(tracking_uri=store).search_experiments()]
    )
    assert recorded.data.metrics["lm_eval/learned_local/acc"] == 1.0
