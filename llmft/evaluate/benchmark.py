"""task=eval: multiple-choice benchmark accuracy (MMLU, C-Eval, CMMLU, shipped and own files).

Each question, after n_shot solved examples from the dev split of its subject, is rendered in the
benchmark's language (C-Eval and CMMLU prompt in Chinese) through the model's chat template as one user
turn with the generation prompt; the model's answer is the choice letter whose token has the highest
next-token logit (no sampling, batched with left padding). task.benchmark=lm_eval hands the model to
lm-evaluation-harness instead (llmft.evaluate.harness).
Writes benchmark_predictions.jsonl (one line per question) and metrics.json (accuracy in percent,
overall, per subject and per category) in the run dir, and prints the results table.
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from tqdm import tqdm

from llmft.config.run_dir import BENCHMARK_PREDICTIONS_FILE, METRICS_FILE
from llmft.evaluate.catalog import LM_EVAL, benchmark_file
from llmft.evaluate.suites import DEV_SPLIT, ENGLISH, SUITES, PromptStyle, scored_split, suite_rows

log = logging.getLogger(__name__)
LETTERS = "ABCDEFGHIJ"


@dataclass(frozen=True)
class Question:
    id: str
    subject: str
    question: str
    choices: tuple[str, ...]
    answer: int  # index into choices
    category: str | None = None


def to_question(row: dict[str, Any], split: str, index: int) -> Question:
    """The index-th row of a split; `answer` may be the choice's index or its letter."""
    choices = tuple(str(choice) for choice in row["choices"])
    if not 2 <= len(choices) <= len(LETTERS):
        raise ValueError(
            f"benchmark {split} row {index} has {len(choices)} choices: give 2 to {len(LETTERS)}."
        )
    answer = row["answer"]
    answer = LETTERS.index(answer.strip().upper()) if isinstance(answer, str) else int(answer)
    if not 0 <= answer < len(choices):
        raise ValueError(
            f"benchmark {split} row {index}: answer {row['answer']!r} is not one of its choices."
        )
    subject = str(row.get("subject") or "all")
    return Question(
        id=str(row.get("id", f"{subject}/{split}-{index}")),  # the same row gets the same id in every load
        subject=subject,
        question=str(row["question"]),
        choices=choices,
        answer=answer,
        category=row.get("category"),
    )


def read_rows(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return json.loads(text)


def load_split(task: DictConfig, split: str) -> list[Question]:
    """The questions of one split of task.benchmark, limited to task.eval_subjects when set."""
    subjects = list(task.eval_subjects)
    if (suite := SUITES.get(task.benchmark)) is not None:
        rows = suite_rows(suite, task, split)
    else:  # rows without a split column are all scored, none is a solved example
        scored = scored_split(task)
        rows = [row for row in read_rows(benchmark_file(task.benchmark)) if row.get("split", scored) == split]
    questions = [to_question(row, split, index) for index, row in enumerate(rows)]
    return [q for q in questions if not subjects or q.subject in subjects]


def few_shot_examples(question: Question, dev: list[Question], n_shot: int) -> list[Question]:
    """The first n_shot solved examples of the question's subject, never the question itself."""
    pool = [example for example in dev if example.subject == question.subject and example.id != question.id]
    if len(pool) < n_shot:
        raise ValueError(
            f"task.n_shot={n_shot}, but subject {question.subject!r} has only {len(pool)} solved examples in "
            f"the {DEV_SPLIT} split: lower task.n_shot."
        )
    return pool[:n_shot]


def format_question(question: Question, style: PromptStyle, solved: bool) -> str:
    lines = [question.question.strip()]
    lines += [f"{LETTERS[index]}. {choice}" for index, choice in enumerate(question.choices)]
    lines.append(style.answer_line(LETTERS[question.answer] if solved else None))
    return "\n".join(lines)


def prompt_text(question: Question, shots: list[Question], benchmark: str) -> str:
    """The user turn, in the benchmark's language: the instruction, the solved examples, the question."""
    suite = SUITES.get(benchmark)
    style = suite.prompt if suite else ENGLISH
    title = suite.title(question.subject) if suite else question.subject.replace("_", " ")
    return "\n\n".join(
        [
            style.header.format(subject=title),
            *(format_question(shot, style, True) for shot in shots),
            format_question(question, style, False),
        ]
    )


def letter_token_ids(tokenizer: Any, count: int) -> list[int]:
    """The token each choice letter starts an answer with (its last token, like MMLU harnesses)."""
    ids = [tokenizer.encode(letter, add_special_tokens=False)[-1] for letter in LETTERS[:count]]
    if len(set(ids)) != count:
        raise ValueError(f"the tokenizer gives the choice letters {LETTERS[:count]} shared tokens: {ids}")
    return ids


def choose_letters(
    model: Any, tokenizer: Any, prompts: list[list[int]], letter_ids: list[list[int]]
) -> list[int]:
    """For each prompt, the index of its letter with the highest next-token logit."""
    import torch

    batch = tokenizer.pad({"input_ids": prompts}, padding=True, return_tensors="pt")
    mask = batch["attention_mask"].to(model.device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)  # left padding must not shift the real tokens' positions
    with torch.inference_mode():
        logits = model(
            input_ids=batch["input_ids"].to(model.device),
            attention_mask=mask,
            position_ids=positions,
            logits_to_keep=1,
        ).logits[:, -1, :]
    return [int(logits[row, ids].argmax()) for row, ids in enumerate(letter_ids)]


def accuracy_table(records: list[dict[str, Any]]) -> dict[str, float]:
    """accuracy (percent) overall, per subject and per category, with the question counts."""
    groups: dict[str, list[bool]] = defaultdict(list)
    for record in records:
        groups[f"subject/{record['subject']}"].append(record["correct"])
        if record.get("category"):
            groups[f"category/{record['category']}"].append(record["correct"])
    metrics = {
        "accuracy": 100 * sum(r["correct"] for r in records) / len(records),
        "eval_questions": len(records),
    }
    for group in sorted(groups, key=lambda name: (not name.startswith("subject/"), name)):
        metrics[f"accuracy/{group}"] = 100 * sum(groups[group]) / len(groups[group])
        metrics[f"questions/{group}"] = len(groups[group])
    return metrics


def print_table(metrics: dict[str, float]) -> None:
    rows = [
        (key.removeprefix("accuracy/"), metrics[key.replace("accuracy/", "questions/")], metrics[key])
        for key in metrics
        if key.startswith("accuracy/")
    ]
    rows.append(("overall", metrics["eval_questions"], metrics["accuracy"]))
    width = max(len(name) for name, _, _ in rows)
    print(f"{'':{width}}  questions  accuracy")
    for name, count, accuracy in rows:
        print(f"{name:{width}}  {count:9d}  {accuracy:7.2f}%")


def evaluate_benchmark(cfg: DictConfig, run_dir: Path) -> float | None:
    """task=eval, recorded by the selected logger (an MLflow run with the accuracies and predictions)."""
    from llmft.track.tracking import tracked_run

    with tracked_run(cfg, run_dir):
        if cfg.task.benchmark == LM_EVAL:
            from llmft.evaluate.harness import evaluate_with_harness

            return evaluate_with_harness(cfg, run_dir)
        return _evaluate_benchmark(cfg, run_dir)


def _evaluate_benchmark(cfg: DictConfig, run_dir: Path) -> float | None:
    from llmft.infer.hf_engine import context_length
    from llmft.model.loader import chat_tokenizer, load_model

    task = cfg.task
    questions = load_split(task, scored_split(task))
    if not questions:
        raise ValueError(
            f"task.benchmark={task.benchmark} has no questions in split {scored_split(task)!r}"
            + (f" for subjects {list(task.eval_subjects)}" if task.eval_subjects else "")
            + ": check task.eval_split and task.eval_subjects."
        )
    dev = load_split(task, DEV_SPLIT) if task.n_shot else []
    prompts = [prompt_text(q, few_shot_examples(q, dev, task.n_shot), task.benchmark) for q in questions]

    tokenizer = chat_tokenizer(cfg.model)
    tokenizer.padding_side = "left"
    model = load_model(cfg, tokenizer, for_training=False)
    texts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": p}], add_generation_prompt=True, tokenize=False
        )
        for p in prompts
    ]
    ids = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts]  # the template has them
    limit = context_length(model, tokenizer)
    if (longest := max(len(prompt) for prompt in ids)) > limit:
        raise ValueError(
            f"a {task.n_shot}-shot prompt has {longest} tokens, more than the model's {limit}: lower task.n_shot."
        )
    letter_ids = {count: letter_token_ids(tokenizer, count) for count in {len(q.choices) for q in questions}}

    predictions: list[int] = []
    started = time.perf_counter()
    with tqdm(total=len(questions), desc=f"Evaluating {task.benchmark}", unit="question") as progress:
        for start in range(0, len(questions), task.batch_size):
            batch = range(start, min(start + task.batch_size, len(questions)))
            predictions += choose_letters(
                model,
                tokenizer,
                [ids[i] for i in batch],
                [letter_ids[len(questions[i].choices)] for i in batch],
            )
            progress.update(len(batch))
    runtime = time.perf_counter() - started

    records = [
        {
            "id": q.id,
            "subject": q.subject,
            "category": q.category,
            "prediction": LETTERS[prediction],
            "answer": LETTERS[q.answer],
            "correct": prediction == q.answer,
            "prompt": text,
        }
        for q, prediction, text in zip(questions, predictions, texts, strict=True)
    ]
    with open(run_dir / BENCHMARK_PREDICTIONS_FILE, "w", encoding="utf-8") as out:
        out.writelines(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
    metrics = {**accuracy_table(records), "eval_runtime": runtime}
    (run_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    print(f"Predictions: {run_dir / BENCHMARK_PREDICTIONS_FILE}")
    print_table(metrics)
    if task.objective not in metrics:
        log.warning("task.objective=%r is not an eval metric (accuracy, ...); returning None", task.objective)
    return metrics.get(task.objective)
