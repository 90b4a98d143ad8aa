"""task=eval on MMLU, C-Eval and CMMLU: local copies in each hub repo's exact file layout, the prompts in
each benchmark's language, and layout mistakes caught before any model loads."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from conftest import compose, run_cli

from llmft.config.errors import ConfigError
from llmft.evaluate.benchmark import few_shot_examples, load_split, prompt_text
from llmft.main import check


def _mmlu(root):
    """cais/mmlu: <subject>/<split>-00000-of-00001.parquet; choices a list, answer an index."""
    for split, rows in {
        "dev": [("What is 1 + 1?", ["1", "2", "3", "4"], 1), ("What is 2 + 2?", ["4", "5", "6", "7"], 0)],
        "test": [("What is 3 + 3?", ["5", "6", "7", "8"], 1)],
    }.items():
        frame = pd.DataFrame(
            [{"question": q, "subject": "astronomy", "choices": c, "answer": a} for q, c, a in rows]
        )
        (root / "astronomy").mkdir(parents=True, exist_ok=True)
        frame.to_parquet(root / "astronomy" / f"{split}-00000-of-00001.parquet")
    return root


def _ceval(root):
    """ceval/ceval-exam: <subject>/<split>-00000-of-00001.parquet; columns id, question, A-D, answer, explanation."""
    for split, rows in {
        "dev": [("1+1=____", "1", "2", "3", "4", "B"), ("2+2=____", "4", "5", "6", "7", "A")],
        "val": [("3+3=____", "5", "6", "7", "8", "B")],
        "test": [("4+4=____", "8", "9", "10", "11", "")],  # answers withheld, as on the hub
    }.items():
        frame = pd.DataFrame(
            [
                {"id": i, "question": q, "A": a, "B": b, "C": c, "D": d, "answer": ans, "explanation": ""}
                for i, (q, a, b, c, d, ans) in enumerate(rows)
            ]
        )
        (root / "accountant").mkdir(parents=True, exist_ok=True)
        frame.to_parquet(root / "accountant" / f"{split}-00000-of-00001.parquet")
    return root


def _cmmlu(root):
    """haonan-li/cmmlu (cmmlu_v1_0_1.zip): <split>/<subject>.csv with an index column, Question, A-D, Answer."""
    for split, rows in {
        "dev": [("土地是什么？", "工具", "资料", "劳动", "资金", "B")],
        "test": [
            ("水是什么？", "液体", "固体", "气体", "等离子", "A"),
            ("冰是什么？", "液体", "固体", "气体", "火", "B"),
        ],
    }.items():
        (root / split).mkdir(parents=True, exist_ok=True)
        frame = pd.DataFrame(
            [dict(zip(["Question", "A", "B", "C", "D", "Answer"], row, strict=True)) for row in rows]
        )
        frame.to_csv(root / split / "agronomy.csv", encoding="utf-8")
    return root


WRITERS = {"mmlu": (_mmlu, "astronomy"), "ceval": (_ceval, "accountant"), "cmmlu": (_cmmlu, "agronomy")}


def _task(name, root, *overrides):
    cfg = compose("task=eval", "logger=none", f"task.benchmark={name}", f"task.data_dir={root}", *overrides)
    check(cfg)
    return cfg.task


@pytest.mark.parametrize(
    ("name", "split", "expected"),
    [
        ("mmlu", "test", [("What is 3 + 3?", ("5", "6", "7", "8"), 1, "STEM")]),
        ("ceval", "val", [("3+3=____", ("5", "6", "7", "8"), 1, "Other")]),
        (
            "cmmlu",
            "test",
            [
                ("水是什么？", ("液体", "固体", "气体", "等离子"), 0, "Other"),
                ("冰是什么？", ("液体", "固体", "气体", "火"), 1, "Other"),
            ],
        ),
    ],
)
def test_each_hub_layout_loads_from_a_local_copy(tmp_path, name, split, expected):
    writer, subject = WRITERS[name]
    task = _task(name, writer(tmp_path), f"task.eval_subjects=[{subject}]")
    questions = load_split(task, split)  # the benchmark's scored split: mmlu/cmmlu test, ceval val
    assert [(q.question, q.choices, q.answer, q.category) for q in questions] == expected
    assert {q.subject for q in questions} == {subject}


EXPECTED_PROMPTS = {
    "mmlu": (
        "The following are multiple choice questions (with answers) about astronomy. "
        "Answer with the letter of the correct choice.\n\n"
        "What is 1 + 1?\nA. 1\nB. 2\nC. 3\nD. 4\nAnswer: B\n\n"
        "What is 2 + 2?\nA. 4\nB. 5\nC. 6\nD. 7\nAnswer: A\n\n"
        "What is 3 + 3?\nA. 5\nB. 6\nC. 7\nD. 8\nAnswer:"
    ),
    "ceval": (
        "以下是中国关于注册会计师考试的单项选择题，请选出其中的正确答案。\n\n"
        "1+1=____\nA. 1\nB. 2\nC. 3\nD. 4\n答案：B\n\n"
        "2+2=____\nA. 4\nB. 5\nC. 6\nD. 7\n答案：A\n\n"
        "3+3=____\nA. 5\nB. 6\nC. 7\nD. 8\n答案："
    ),
    "cmmlu": (
        "以下是关于农学的单项选择题，请直接给出正确答案的选项。\n\n"
        "土地是什么？\nA. 工具\nB. 资料\nC. 劳动\nD. 资金\n答案：B\n\n"
        "水是什么？\nA. 液体\nB. 固体\nC. 气体\nD. 等离子\n答案："
    ),
}


@pytest.mark.parametrize("name", sorted(EXPECTED_PROMPTS))
def test_few_shot_prompt_is_in_the_benchmarks_language(tmp_path, name):
    writer, subject = WRITERS[name]
    shots = 1 if name == "cmmlu" else 2
    task = _task(name, writer(tmp_path), f"task.eval_subjects=[{subject}]", f"task.n_shot={shots}")
    question = load_split(task, "val" if name == "ceval" else "test")[0]
    prompt = prompt_text(question, few_shot_examples(question, load_split(task, "dev"), shots), name)
    assert prompt == EXPECTED_PROMPTS[name]


def test_a_missing_subject_names_its_file_and_the_fix(tmp_path):
    _mmlu(tmp_path)
    expected = tmp_path / "virology" / "test-00000-of-00001.parquet"
    with pytest.raises(ConfigError, match=re.escape(str(expected))) as error:
        _task("mmlu", tmp_path, "task.eval_subjects=[astronomy,virology]")
    assert "list the subjects it has in task.eval_subjects" in str(error.value)
    with pytest.raises(
        ConfigError, match="lacks .* and 109 more"
    ):  # every subject by default: 56 others x (test, dev) - 3 named
        _task("mmlu", tmp_path)


def test_the_old_zip_layout_is_not_taken_for_the_hub_one(tmp_path):
    # C-Eval's first release: <split>/<subject>_<split>.csv; the hub repo now has one parquet dir per subject
    (tmp_path / "val").mkdir()
    (tmp_path / "val" / "accountant_val.csv").write_text("id,question,A,B,C,D,answer,explanation\n")
    with pytest.raises(ConfigError, match=re.escape(f"{tmp_path}/accountant/val-00000-of-00001.parquet")):
        _task("ceval", tmp_path, "task.eval_subjects=[accountant]", "task.n_shot=0")


def test_wrong_columns_name_the_file_before_the_model_loads(tmp_path):
    _ceval(tmp_path)
    bad = tmp_path / "accountant" / "val-00000-of-00001.parquet"
    pd.DataFrame([{"question": "q", "choices": ["a", "b"], "answer": 0}]).to_parquet(bad)  # mmlu's columns
    task = _task("ceval", tmp_path, "task.eval_subjects=[accountant]")
    with pytest.raises(ConfigError, match=re.escape(f"{bad} has no column A, B, C, D")):
        load_split(task, "val")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["task.benchmark=ceval", "task.eval_split=test"],
            "ceval's test answers are not public; score task.eval_split=val",
        ),
        (["task.benchmark=cmmlu", "task.eval_split=validation"], "cmmlu has the splits dev, test"),
        (
            ["task.benchmark=cmmlu", "task.eval_subjects=[astronomy,agronomyy]"],
            "cmmlu has no subject 'agronomyy'",
        ),
        (
            ["task.benchmark=mmlu", "task.data_dir=/no/such/dir"],
            "task.data_dir='/no/such/dir' is not a directory",
        ),
        (["task.benchmark=lm_eval"], "task.benchmark=lm_eval needs task.lm_eval_tasks"),
    ],
)
def test_impossible_benchmark_settings_fail_at_compose_time(overrides, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        check(compose("task=eval", *overrides))


@pytest.mark.slow
def test_a_layout_mistake_is_one_line_and_exit_code_2(tmp_path):
    result = run_cli(
        "task=eval", "task.benchmark=cmmlu", f"task.data_dir={tmp_path}", "task.eval_subjects=[arts]"
    )
    assert result.returncode == 2
    assert f"{tmp_path}/test/arts.csv" in result.stderr and "Traceback" not in result.stderr
