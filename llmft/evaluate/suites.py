"""The hub benchmarks task=eval knows: MMLU, C-Eval and CMMLU, in the file layout their hub repos have.

A local copy (task.data_dir) must have that layout too, so a downloaded repo works as it is:

    mmlu   (cais/mmlu)         <subject>/{dev,validation,test}-00000-of-00001.parquet
    ceval  (ceval/ceval-exam)  <subject>/{dev,val,test}-00000-of-00001.parquet   (test answers are not public)
    cmmlu  (haonan-li/cmmlu)   {dev,test}/<subject>.csv                          (unzipped cmmlu_v1_0_1.zip)

Without task.data_dir the files are downloaded from the hub into its cache. This module imports
neither torch nor pandas at import time: llmft.main checks the layout right after composition.
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from llmft.config.errors import ConfigError
from llmft.config.paths import cache_root, resolve_local_path
from llmft.evaluate.catalog import HUB_BENCHMARKS
from llmft.evaluate.subjects import (
    CEVAL_CATEGORIES,
    CEVAL_NAMES,
    CMMLU_CATEGORIES,
    CMMLU_NAMES,
    MMLU_CATEGORIES,
)

DEV_SPLIT = "dev"  # where every benchmark keeps its solved examples
SCORED_SPLIT = "test"  # scored when task.eval_split is not set (C-Eval: val)
MAX_LISTED = 3  # missing files named in one message


@dataclass(frozen=True)
class PromptStyle:
    """How a benchmark words its prompt: the header (with {subject}) and the cue the answer letter follows."""

    header: str
    cue: str
    gap: str = ""  # between the cue and a solved example's letter

    def answer_line(self, letter: str | None) -> str:
        return self.cue if letter is None else f"{self.cue}{self.gap}{letter}"


ENGLISH = PromptStyle(
    header="The following are multiple choice questions (with answers) about {subject}. "
    "Answer with the letter of the correct choice.",
    cue="Answer:",
    gap=" ",
)


@dataclass(frozen=True)
class Suite:
    name: str
    splits: tuple[str, ...]
    pattern: str  # a file of one subject and split, relative to the benchmark's directory
    question_column: str
    choice_columns: tuple[str, ...]  # one column holding the list of choices, or one column per choice
    answer_column: str
    categories: dict[str, str]
    prompt: PromptStyle
    names: dict[str, str] = field(default_factory=dict)  # subject -> the name its prompt uses
    archive: str | None = None  # the hub keeps the files in this zip
    unanswered: tuple[str, ...] = ()  # splits whose answers are withheld
    scored: str = SCORED_SPLIT  # the split scored by default

    @property
    def hub_id(self) -> str:
        return HUB_BENCHMARKS[self.name]

    def title(self, subject: str) -> str:
        return self.names.get(subject, subject.replace("_", " "))

    def files(self, root: Path, subject: str, split: str) -> list[Path]:
        return sorted(root.glob(self.pattern.format(subject=subject, split=split)))

    def expected_file(self, root: Path, subject: str, split: str) -> Path:
        return root / self.pattern.format(subject=subject, split=split).replace("*", "00000-of-00001")


SUITES = {
    "mmlu": Suite(
        name="mmlu",
        splits=("dev", "validation", "test"),
        pattern="{subject}/{split}-*.parquet",
        question_column="question",
        choice_columns=("choices",),
        answer_column="answer",
        categories=MMLU_CATEGORIES,
        prompt=ENGLISH,
    ),
    "ceval": Suite(
        name="ceval",
        splits=("dev", "val", "test"),
        pattern="{subject}/{split}-*.parquet",
        question_column="question",
        choice_columns=("A", "B", "C", "D"),
        answer_column="answer",
        categories=CEVAL_CATEGORIES,
        prompt=PromptStyle(
            header="以下是中国关于{subject}考试的单项选择题，请选出其中的正确答案。", cue="答案："
        ),
        names=CEVAL_NAMES,
        unanswered=("test",),
        scored="val",
    ),
    "cmmlu": Suite(
        name="cmmlu",
        splits=("dev", "test"),
        pattern="{split}/{subject}.csv",
        question_column="Question",
        choice_columns=("A", "B", "C", "D"),
        answer_column="Answer",
        categories=CMMLU_CATEGORIES,
        prompt=PromptStyle(
            header="以下是关于{subject}的单项选择题，请直接给出正确答案的选项。", cue="答案："
        ),
        names=CMMLU_NAMES,
        archive="cmmlu_v1_0_1.zip",
    ),
}


def scored_split(task: DictConfig) -> str:
    """task.eval_split, or the split the benchmark is scored on."""
    suite = SUITES.get(task.benchmark)
    return task.eval_split or (suite.scored if suite else SCORED_SPLIT)


def needed_splits(task: DictConfig) -> list[str]:
    split = scored_split(task)
    return [split, *([DEV_SPLIT] if task.n_shot and split != DEV_SPLIT else [])]


def subjects_of(suite: Suite, task: DictConfig) -> list[str]:
    return list(task.eval_subjects) or sorted(suite.categories)


def layout_problems(task: DictConfig) -> list[str]:
    """What keeps task=eval from reading a hub benchmark: a split it lacks, unknown subjects, missing files."""
    suite = SUITES.get(task.benchmark) if task.name == "eval" else None
    if suite is None:
        return []
    split = scored_split(task)
    if split not in suite.splits:
        return [f"task.eval_split={split!r}: {suite.name} has the splits {', '.join(suite.splits)}."]
    if split in suite.unanswered:
        return [
            f"task.eval_split={split!r}: {suite.name}'s {split} answers are not public; "
            f"score task.eval_split={suite.scored} instead."
        ]
    unknown = sorted(set(task.eval_subjects) - set(suite.categories))
    if unknown:
        return [
            f"task.eval_subjects: {suite.name} has no subject {', '.join(map(repr, unknown))}. "
            f"Its subjects: {', '.join(sorted(suite.categories))}."
        ]
    if not task.data_dir:
        return []  # downloaded from the hub when the task starts
    root = resolve_local_path(task.data_dir)
    if root is None or not root.is_dir():
        return [f"task.data_dir={task.data_dir!r} is not a directory: give a local copy of {suite.hub_id}."]
    missing = [
        suite.expected_file(root, subject, split)
        for subject in subjects_of(suite, task)
        for split in needed_splits(task)
        if not suite.files(root, subject, split)
    ]
    if not missing:
        return []
    more = f" and {len(missing) - MAX_LISTED} more" if len(missing) > MAX_LISTED else ""
    return [
        f"task.data_dir={task.data_dir!r} lacks {', '.join(map(str, missing[:MAX_LISTED]))}{more}: "
        f"{suite.name} is read in {suite.hub_id}'s layout ({suite.pattern}). Copy the whole benchmark there, "
        "or list the subjects it has in task.eval_subjects."
    ]


def benchmark_dir(suite: Suite, task: DictConfig) -> Path:
    """task.data_dir, or the hub copy of the selected subjects (downloaded once into the hub cache)."""
    if task.data_dir:
        return resolve_local_path(task.data_dir)
    from huggingface_hub import hf_hub_download, snapshot_download

    try:
        if suite.archive is None:
            patterns = [f"{subject}/*" for subject in subjects_of(suite, task)]
            return Path(snapshot_download(suite.hub_id, repo_type="dataset", allow_patterns=patterns))
        return _unzipped(Path(hf_hub_download(suite.hub_id, suite.archive, repo_type="dataset")), suite.name)
    except Exception as err:  # noqa: BLE001 - offline, gated, moved: the fix is the same
        raise ConfigError(
            f"cannot download {suite.hub_id} ({type(err).__name__}: {err}). Go online, or download it yourself "
            f"and set task.data_dir to that directory ({suite.pattern})."
        ) from err


def _unzipped(archive: Path, name: str) -> Path:
    target = cache_root() / "benchmarks" / f"{name}-{archive.stat().st_size}"
    if not target.is_dir():
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=target.parent))
        with zipfile.ZipFile(archive) as zipped:
            zipped.extractall(staging)
        if target.exists():  # another process unzipped it meanwhile
            shutil.rmtree(staging)
        else:
            staging.rename(target)
    return target


def _read_table(path: Path) -> list[dict[str, Any]]:
    import pandas as pd

    frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, index_col=0)
    return frame.to_dict(orient="records")


def suite_rows(suite: Suite, task: DictConfig, split: str) -> list[dict[str, Any]]:
    """The rows of one split, each as {question, choices, answer, subject, category}."""
    root = benchmark_dir(suite, task)
    wanted = {suite.question_column, suite.answer_column, *suite.choice_columns}
    rows: list[dict[str, Any]] = []
    for subject in subjects_of(suite, task):
        for path in suite.files(root, subject, split):
            table = _read_table(path)
            if table and (absent := wanted - set(table[0])):
                raise ConfigError(
                    f"{path} has no column {', '.join(sorted(absent))}: {suite.name} files have the columns "
                    f"{', '.join(sorted(wanted))} ({suite.hub_id}'s layout). Fix task.data_dir."
                )
            for row in table:
                choices = [row[column] for column in suite.choice_columns]
                rows.append(
                    {
                        "question": row[suite.question_column],
                        "choices": list(choices[0]) if len(choices) == 1 else choices,
                        "answer": row[suite.answer_column],
                        "subject": subject,
                        "category": suite.categories[subject],
                    }
                )
    return rows
