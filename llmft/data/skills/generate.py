"""Write the skills benchmark: five small tasks whose answer the prompt fully determines.

    python -m llmft.data.skills.generate      # rewrites llmft/data/skills/* and the skills_mc benchmark

    copy     Copy: 4 7 1      -> 4 7 1
    upper    Upper: c a t     -> C A T
    reverse  Reverse: 4 7 1   -> 1 7 4
    sort     Sort: 4 7 1      -> 1 4 7
    add      Add: 3 + 5       -> 8

Digits and letters are spaced, so every symbol is a token of its own and a task is a rule over tokens,
not a fact about words: a 300k-parameter model can learn it and apply it to prompts it never saw.
The test split holds only prompts absent from the train split. Files (the same bytes every time):

- skills_train.json, skills_test.json: alpaca rows (instruction, output, skill) for SFT and task=predict;
- skills_pt.jsonl: the train problems as plain text ("Copy: 4 7 1 = 4 7 1"), for pre-training;
- llmft/evaluate/benchmarks/skills_mc.jsonl: the same tasks as multiple choice for task=eval
  (dev examples from the train split, test questions from the test split).
"""

from __future__ import annotations

import json
import random
import string
from collections.abc import Callable
from pathlib import Path

SKILLS_DIR = Path(__file__).resolve().parent
MC_FILE = SKILLS_DIR.parents[1] / "evaluate" / "benchmarks" / "skills_mc.jsonl"
TRAIN_PER_SKILL, TEST_PER_SKILL = 400, 40
SMALL_SKILLS = {"add": (80, 20)}  # add has only 100 distinct prompts: 80 to learn from, 20 held out
MC_DEV_PER_SKILL, MC_TEST_PER_SKILL = 3, 20
PT_PROBLEMS_PER_ROW = 8
LETTERS = "abcdefghijklmnopqrstuvwxyz"

Problem = tuple[str, str]  # (prompt, answer)


def _digits(rng: random.Random) -> list[str]:
    return [str(rng.randint(0, 9)) for _ in range(rng.randint(3, 5))]


def copy(rng: random.Random) -> Problem:
    digits = " ".join(_digits(rng))
    return f"Copy: {digits}", digits


def upper(rng: random.Random) -> Problem:
    letters = [rng.choice(LETTERS) for _ in range(rng.randint(3, 5))]
    return f"Upper: {' '.join(letters)}", " ".join(letters).upper()


def reverse(rng: random.Random) -> Problem:
    digits = _digits(rng)
    return f"Reverse: {' '.join(digits)}", " ".join(reversed(digits))


def sort(rng: random.Random) -> Problem:
    digits = _digits(rng)
    return f"Sort: {' '.join(digits)}", " ".join(sorted(digits))


def add(rng: random.Random) -> Problem:
    a, b = rng.randint(0, 9), rng.randint(0, 9)
    return f"Add: {a} + {b}", str(a + b)


SKILLS: dict[str, Callable[[random.Random], Problem]] = {
    "copy": copy,
    "upper": upper,
    "reverse": reverse,
    "sort": sort,
    "add": add,
}


def problems(rng: random.Random, skill: str, count: int, exclude: set[str]) -> list[Problem]:
    """count distinct problems of one skill whose prompts are not in exclude (nor repeated)."""
    found: dict[str, str] = {}
    for _ in range(100 * count):
        prompt, answer = SKILLS[skill](rng)
        if prompt not in exclude:
            found.setdefault(prompt, answer)
        if len(found) == count:
            break
    return list(found.items())


def wrong_answers(rng: random.Random, answer: str, count: int) -> list[str]:
    """Distinct near misses: one symbol changed, or two swapped, so no choice gives itself away."""
    wrong: set[str] = set()
    symbols = answer.split(" ")
    while len(wrong) < count:
        changed = list(symbols)
        index = rng.randrange(len(changed))
        if len(changed) > 1 and rng.random() < 0.5:
            other = (index + 1) % len(changed)
            changed[index], changed[other] = changed[other], changed[index]
        else:
            pool = string.ascii_uppercase if changed[index].isalpha() else string.digits
            changed[index] = (
                rng.choice(pool) if len(changed) > 1 else str(int(answer) + rng.choice([-2, -1, 1, 2]))
            )
        if (candidate := " ".join(changed)) != answer:
            wrong.add(candidate)
    return sorted(wrong)


def splits(rng: random.Random) -> tuple[list[dict], list[dict]]:
    train, test = [], []
    for skill in SKILLS:
        train_size, test_size = SMALL_SKILLS.get(skill, (TRAIN_PER_SKILL, TEST_PER_SKILL))
        seen = problems(rng, skill, train_size, set())
        held_out = problems(rng, skill, test_size, {prompt for prompt, _ in seen})
        train += [{"instruction": p, "output": a, "skill": skill} for p, a in seen]
        test += [{"instruction": p, "output": a, "skill": skill} for p, a in held_out]
    rng.shuffle(train)  # mixed skills in every batch
    return train, test


def pretraining_text(train: list[dict]) -> list[dict]:
    lines = [f"{row['instruction']} = {row['output']}" for row in train]
    return [
        {"text": "\n".join(lines[start : start + PT_PROBLEMS_PER_ROW])}
        for start in range(0, len(lines), PT_PROBLEMS_PER_ROW)
    ]


def multiple_choice(rng: random.Random, train: list[dict], test: list[dict]) -> list[dict]:
    rows = []
    for split, source, per_skill in (("dev", train, MC_DEV_PER_SKILL), ("test", test, MC_TEST_PER_SKILL)):
        for skill in SKILLS:
            for row in [r for r in source if r["skill"] == skill][:per_skill]:
                choices = [row["output"], *wrong_answers(rng, row["output"], 3)]
                rng.shuffle(choices)
                rows.append(
                    {
                        "question": row["instruction"],
                        "subject": skill,
                        "category": "skills",
                        "choices": choices,
                        "answer": choices.index(row["output"]),
                        "split": split,
                    }
                )
    return rows


def _dump_json(rows: list[dict], path: Path) -> None:
    path.write_text("[\n" + ",\n".join(json.dumps(row) for row in rows) + "\n]\n", encoding="utf-8")


def _dump_jsonl(rows: list[dict], path: Path) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def generate(out_dir: Path = SKILLS_DIR, mc_file: Path = MC_FILE) -> list[Path]:
    """Write every skills file; the same bytes every time."""
    rng = random.Random(0)
    train, test = splits(rng)
    out_dir.mkdir(parents=True, exist_ok=True)
    _dump_json(train, out_dir / "skills_train.json")
    _dump_json(test, out_dir / "skills_test.json")
    _dump_jsonl(pretraining_text(train), out_dir / "skills_pt.jsonl")
    _dump_jsonl(multiple_choice(rng, train, test), mc_file)
    return [out_dir / "skills_train.json", out_dir / "skills_test.json", out_dir / "skills_pt.jsonl", mc_file]


if __name__ == "__main__":
    for written in generate():
        print(f"wrote {written} ({written.stat().st_size // 1024} KB)")
