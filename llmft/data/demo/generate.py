"""Write the demo datasets: small, deterministic and learnable by a tiny model in a minute of CPU.

    python -m llmft.data.demo.generate            # rewrites llmft/data/demo/*.json(l)

Every row comes from a few regular task families (sums, reversing and spelling words, capitals,
opposites, colours, counting) whose answer is fully determined by the prompt, so the loss of
even a 300k-parameter model falls quickly. Each family also yields a wrong answer, which the
preference (chosen/rejected) and KTO (label false) files use.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

DEMO_DIR = Path(__file__).resolve().parent

WORDS = (
    "cat dog sun tree book fish bird milk rain star moon lamp cake ship frog rose wolf bear coin door "
    "hand leaf nest rock salt seed shoe snow wind ball"
).split()
OPPOSITES = [
    ("hot", "cold"),
    ("big", "small"),
    ("up", "down"),
    ("fast", "slow"),
    ("happy", "sad"),
    ("old", "new"),
    ("light", "dark"),
    ("open", "closed"),
    ("full", "empty"),
    ("early", "late"),
    ("hard", "soft"),
    ("wet", "dry"),
    ("high", "low"),
    ("loud", "quiet"),
    ("strong", "weak"),
    ("long", "short"),
]
OPPOSITES += [(b, a) for a, b in OPPOSITES]
COLOURS = [
    ("the sky", "blue"),
    ("grass", "green"),
    ("snow", "white"),
    ("the sun", "yellow"),
    ("coal", "black"),
    ("a banana", "yellow"),
    ("a tomato", "red"),
    ("milk", "white"),
    ("a frog", "green"),
    ("a lemon", "yellow"),
    ("a plum", "purple"),
    ("a carrot", "orange"),
    ("chocolate", "brown"),
    ("a strawberry", "red"),
]
PALETTE = sorted({colour for _, colour in COLOURS})
SYSTEMS = ["You are a helpful assistant.", "You are a precise assistant. Answer in one short sentence."]

# A task: (instruction, input, correct answer, wrong answer)
Task = tuple[str, str, str, str]


def addition(rng: random.Random) -> Task:
    a, b = rng.randint(0, 9), rng.randint(0, 9)
    wrong = a + b + rng.choice([-2, -1, 1, 2])
    return f"Add {a} and {b}.", "", f"{a} + {b} = {a + b}.", f"{a} + {b} = {wrong}."


def reverse(rng: random.Random) -> Task:
    word = rng.choice(WORDS)
    return "Reverse the word.", word, word[::-1], word[1:] + word[0]


def spell(rng: random.Random) -> Task:
    word = rng.choice(WORDS)
    return "Spell the word.", word, "-".join(word), "-".join(sorted(word))


def capitals(rng: random.Random) -> Task:
    word = rng.choice(WORDS)
    return "Write the word in capital letters.", word, word.upper(), word.capitalize()


def opposite(rng: random.Random) -> Task:
    word, other = rng.choice(OPPOSITES)
    wrong = rng.choice([o for _, o in OPPOSITES if o not in (word, other)])
    return (
        f"What is the opposite of {word}?",
        "",
        f"The opposite of {word} is {other}.",
        f"The opposite of {word} is {wrong}.",
    )


def colour(rng: random.Random) -> Task:
    thing, hue = rng.choice(COLOURS)
    wrong = rng.choice([c for c in PALETTE if c != hue])
    subject = thing[0].upper() + thing[1:]
    return f"What colour is {thing}?", "", f"{subject} is {hue}.", f"{subject} is {wrong}."


def count(rng: random.Random) -> Task:
    start = rng.randint(1, 6)
    numbers = [str(n) for n in range(start, start + rng.randint(3, 5))]
    skipped = numbers[:1] + numbers[2:]
    return (
        f"Count from {numbers[0]} to {numbers[-1]}.",
        "",
        ", ".join(numbers) + ".",
        ", ".join(skipped) + ".",
    )


FAMILIES: list[Callable[[random.Random], Task]] = [
    addition,
    reverse,
    spell,
    capitals,
    opposite,
    colour,
    count,
]


def task(rng: random.Random) -> Task:
    return rng.choice(FAMILIES)(rng)


def prompt_of(instruction: str, input_text: str) -> str:
    return f"{instruction}\n{input_text}" if input_text else instruction


def sft_rows(rng: random.Random, n: int) -> list[dict]:
    rows = []
    for index in range(n):
        instruction, input_text, output, _ = task(rng)
        row = {"instruction": instruction, "input": input_text, "output": output}
        if index % 10 == 9:  # every tenth row continues an earlier exchange
            earlier = task(rng)
            row["history"] = [[prompt_of(*earlier[:2]), earlier[2]]]
        rows.append(row)
    return rows


def sharegpt_rows(rng: random.Random, n: int) -> list[dict]:
    rows = []
    for index in range(n):
        turns = []
        for _ in range(rng.randint(2, 3)):
            instruction, input_text, output, _ = task(rng)
            turns += [
                {"from": "human", "value": prompt_of(instruction, input_text)},
                {"from": "gpt", "value": output},
            ]
        row: dict = {"conversations": turns}
        if index % 2 == 0:
            row["system"] = SYSTEMS[index // 2 % len(SYSTEMS)]
        rows.append(row)
    return rows


def openai_rows(rng: random.Random, n: int) -> list[dict]:
    rows = []
    for index in range(n):
        messages = [{"role": "system", "content": SYSTEMS[index % len(SYSTEMS)]}] if index % 3 == 0 else []
        for _ in range(rng.randint(1, 2)):
            instruction, input_text, output, _ = task(rng)
            messages += [
                {"role": "user", "content": prompt_of(instruction, input_text)},
                {"role": "assistant", "content": output},
            ]
        rows.append({"messages": messages})
    return rows


def fact(rng: random.Random) -> str:
    kind = rng.randrange(5)
    if kind == 0:
        thing, hue = rng.choice(COLOURS)
        return f"{thing[0].upper() + thing[1:]} is {hue}."
    if kind == 1:
        word, other = rng.choice(OPPOSITES)
        return f"The opposite of {word} is {other}."
    if kind == 2:
        a, b = rng.randint(0, 9), rng.randint(0, 9)
        return f"{a} plus {b} is {a + b}."
    word = rng.choice(WORDS)
    if kind == 3:
        return f"The word {word} has {len(word)} letters."
    return f"The word {word} backwards is {word[::-1]}."


def text_rows(rng: random.Random, n: int) -> list[dict]:
    return [{"text": " ".join(fact(rng) for _ in range(rng.randint(2, 3)))} for _ in range(n)]


def preference_rows(rng: random.Random, n: int) -> list[dict]:
    rows = []
    for _ in range(n):
        instruction, input_text, right, wrong = task(rng)
        rows.append({"instruction": instruction, "input": input_text, "chosen": right, "rejected": wrong})
    return rows


def kto_rows(rng: random.Random, n: int) -> list[dict]:
    rows = []
    for _ in range(n):
        instruction, input_text, right, wrong = task(rng)
        desirable = rng.random() < 0.5
        rows.append(
            {
                "instruction": instruction,
                "input": input_text,
                "output": right if desirable else wrong,
                "label": desirable,
            }
        )
    return rows


def _dump_json(rows: list[dict], path: Path) -> None:
    """A JSON array with one row per line: compact, readable, diff-friendly."""
    lines = ",\n".join(json.dumps(row, ensure_ascii=False) for row in rows)
    path.write_text(f"[\n{lines}\n]\n", encoding="utf-8")


def _dump_jsonl(rows: list[dict], path: Path) -> None:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")


def generate(out_dir: Path = DEMO_DIR) -> list[Path]:
    """Write every demo file into out_dir; the same bytes every time."""
    rng = random.Random(0)
    outputs = [
        ("demo_sft.json", sft_rows(rng, 300), _dump_json),
        ("demo_sharegpt.json", sharegpt_rows(rng, 100), _dump_json),
        ("demo_openai.jsonl", openai_rows(rng, 60), _dump_jsonl),
        ("demo_pt.jsonl", text_rows(rng, 300), _dump_jsonl),
        ("demo_dpo.json", preference_rows(rng, 200), _dump_json),
        ("demo_kto.json", kto_rows(rng, 200), _dump_json),
    ]
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for filename, rows, dump in outputs:
        dump(rows, out_dir / filename)
        paths.append(out_dir / filename)
    return paths


if __name__ == "__main__":
    for written in generate():
        print(f"wrote {written} ({written.stat().st_size // 1024} KB)")
