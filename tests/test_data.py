"""The data layer: formats -> canonical rows, loading and mixing, masking, truncation, caching."""

from __future__ import annotations

import copy
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import train_test_tokenizer
from datasets import Dataset
from omegaconf import OmegaConf
from transformers import PreTrainedTokenizerFast

from llmft.config.schema import DataConfig, DatasetConfig
from llmft.data import pipeline
from llmft.data.demo import generate
from llmft.data.errors import DataError
from llmft.data.loader import CANONICAL_FEATURES, load_canonical
from llmft.data.sources import check_dataset_files
from llmft.data.templates import TEMPLATES
from llmft.data.tokenize import IGNORE_INDEX, encode_conversation, encode_text

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DATASET_CONF = PROJECT_ROOT / "conf" / "dataset"

SYSTEM = "You are terse."
TURNS = [("Add 2 and 3.", "2 + 3 = 5."), ("Reverse the word.\ncat", "tac")]


@pytest.fixture(scope="session")
def tokenizer() -> PreTrainedTokenizerFast:
    """Trained on one demo file, with ChatML (our template) and <s>/<|im_end|>/<pad>."""
    return train_test_tokenizer(
        [(generate.DEMO_DIR / "demo_sft.json").read_text()],
        eos="<|im_end|>",
        extra=("<|im_start|>",),
        vocab_size=500,
        chat_template=TEMPLATES["chatml"],
    )


def write(path: Path, rows: list[dict], jsonl: bool = False) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) if jsonl else json.dumps(rows))
    return str(path)


def entry(path: str, **fields) -> DatasetConfig:
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(DatasetConfig), {"path": path, **fields}))


def load(datasets: dict, seed: int = 0, **data) -> list[dict]:
    return load_canonical(datasets, DataConfig(**data), seed).to_list()


def conversation_row(turns=TURNS, system: str = SYSTEM) -> dict:
    messages = [
        m for q, a in turns for m in ({"role": "user", "content": q}, {"role": "assistant", "content": a})
    ]
    return {
        "system": system,
        "tools": "",
        "messages": messages,
        "chosen": None,
        "rejected": None,
        "kto_tag": None,
        "text": None,
    }


def labelled_text(tokenizer, encoded: dict) -> list[str]:
    """Decoded runs of trained tokens."""
    runs: list[list[int]] = []
    previous = IGNORE_INDEX
    for token, label in zip(encoded["input_ids"], encoded["labels"], strict=True):
        if label != IGNORE_INDEX:
            if previous == IGNORE_INDEX:
                runs.append([])
            runs[-1].append(token)
        previous = label
    return [tokenizer.decode(run) for run in runs]


# --- demo data ---------------------------------------------------------------------------------


def test_demo_files_are_what_the_generator_writes_and_small(tmp_path):
    written = generate.generate(tmp_path)
    for path in written:
        assert path.read_bytes() == (generate.DEMO_DIR / path.name).read_bytes(), (
            f"{path.name} is stale: regenerate"
        )
    assert sum(p.stat().st_size for p in written) < 300_000


def test_every_demo_dataset_entry_loads():
    counts = {}
    for yaml in sorted(DATASET_CONF.glob("demo_*.yaml")):
        datasets = {
            name: entry(**node) for name, node in OmegaConf.to_container(OmegaConf.load(yaml)).items()
        }
        rows = load(datasets)
        counts[yaml.stem] = len(rows)
        kind = {"demo_dpo": "chosen", "demo_kto": "kto_tag", "demo_pt": "text"}.get(yaml.stem, "messages")
        assert all(row[kind] not in (None, []) for row in rows), yaml.stem
    assert counts == {
        "demo_dpo": 200,
        "demo_kto": 200,
        "demo_openai": 60,
        "demo_pt": 300,
        "demo_sft": 300,
        "demo_sharegpt": 100,
    }


# --- formats -> canonical ----------------------------------------------------------------------


def test_alpaca_sharegpt_and_openai_give_the_same_canonical_row(tmp_path):
    (q1, a1), (q2, a2) = TURNS
    instruction, query = q2.split("\n")
    alpaca = write(
        tmp_path / "a.json",
        [{"instruction": instruction, "input": query, "output": a2, "history": [[q1, a1]], "system": SYSTEM}],
    )
    sharegpt = write(
        tmp_path / "s.json",
        [
            {
                "system": SYSTEM,
                "conversations": [
                    {"from": "human", "value": q1},
                    {"from": "gpt", "value": a1},
                    {"from": "human", "value": q2},
                    {"from": "gpt", "value": a2},
                ],
            }
        ],
    )
    openai = write(
        tmp_path / "o.jsonl",
        [
            {
                "messages": [
                    {"role": "system", "content": SYSTEM},
                    {"role": "user", "content": q1},
                    {"role": "assistant", "content": a1},
                    {"role": "user", "content": q2},
                    {"role": "assistant", "content": a2},
                ]
            }
        ],
        jsonl=True,
    )
    rows = [
        load({"a": entry(alpaca, columns={"history": "history", "system": "system"})}),
        load({"s": entry(sharegpt, formatting="sharegpt", columns={"system": "system"})}),
        load({"o": entry(openai, formatting="openai", columns={"messages": "messages"})}),
    ]
    assert rows[0] == rows[1] == rows[2] == [conversation_row()]


def test_column_mapping_and_role_tags(tmp_path):
    alpaca = write(tmp_path / "a.json", [{"q": "Add 1 and 1.", "a": "1 + 1 = 2.", "sys": "Be exact."}])
    [row] = load({"a": entry(alpaca, columns={"prompt": "q", "response": "a", "system": "sys"})})
    assert row["system"] == "Be exact."
    assert row["messages"] == [
        {"role": "user", "content": "Add 1 and 1."},
        {"role": "assistant", "content": "1 + 1 = 2."},
    ]

    tools = [{"name": "add", "parameters": {}}]
    sharegpt = write(
        tmp_path / "s.json",
        [
            {
                "tools": json.dumps(tools),
                "chat": [
                    {"who": "me", "said": "What is 1 + 1?"},
                    {"who": "call", "said": '{"name": "add"}'},
                    {"who": "result", "said": "2"},
                    {"who": "bot", "said": "It is 2."},
                ],
            }
        ],
    )
    tags = {
        "role_tag": "who",
        "content_tag": "said",
        "user_tag": "me",
        "assistant_tag": "bot",
        "observation_tag": "result",
        "function_tag": "call",
    }
    [row] = load(
        {
            "s": entry(
                sharegpt, formatting="sharegpt", columns={"messages": "chat", "tools": "tools"}, tags=tags
            )
        }
    )
    assert [m["role"] for m in row["messages"]] == ["user", "assistant", "tool", "assistant"]
    assert json.loads(row["tools"]) == tools


def test_ranking_and_kto_rows(tmp_path):
    pairs = write(
        tmp_path / "p.json", [{"instruction": "Add 1 and 1.", "input": "", "chosen": "2", "rejected": "3"}]
    )
    [row] = load({"p": entry(pairs, ranking=True, columns={"chosen": "chosen", "rejected": "rejected"})})
    assert (row["messages"][-1]["role"], row["chosen"], row["rejected"]) == ("user", "2", "3")
    tagged = write(tmp_path / "k.json", [{"instruction": "Add 1 and 1.", "output": "3", "label": False}])
    [row] = load({"k": entry(tagged, columns={"kto_tag": "label"})})
    assert row["kto_tag"] is False and row["messages"][-1] == {"role": "assistant", "content": "3"}


# --- clear errors -------------------------------------------------------------------------------


def test_missing_file_column_and_empty_dataset(tmp_path):
    with pytest.raises(DataError, match=r"dataset 'x': file 'nowhere/missing.json' not found"):
        load({"x": entry("nowhere/missing.json")})
    rows = write(tmp_path / "r.json", [{"prompt": "Hi", "output": "Hello"}])
    with pytest.raises(
        DataError,
        match=r"column\(s\) 'instruction' not found; the data has prompt, output. "
        r"Fix: map them under dataset.x.columns",
    ):
        load({"x": entry(rows)})
    with pytest.raises(DataError, match=r"dataset 'x': .*empty.json' is empty"):
        load({"x": entry(write(tmp_path / "empty.json", []))})
    with pytest.raises(DataError, match=r"dataset 'x': .*empty.jsonl' is empty"):
        load({"x": entry(write(tmp_path / "empty.jsonl", [], jsonl=True))})


BAD_ROWS = [
    {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]},
    {"conversations": [{"from": "gpt", "value": "Hello"}, {"from": "human", "value": "Hi"}]},  # wrong order
    {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": ""}]},  # empty reply
    {"conversations": [{"from": "human", "value": "Hi"}, {"from": "robot", "value": "Hey"}]},  # unknown role
]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (1, r"row 1: column 'conversations', turn 0: expected a user \(or tool\) turn, got 'assistant'"),
        (2, r"row 2: column 'conversations', turn 1 \(assistant\): missing or empty content"),
        (3, r"row 3: column 'conversations', turn 1: unknown role 'robot'.*Fix: set the dataset's tags"),
    ],
)
def test_malformed_rows_name_row_column_and_fix(tmp_path, row, message):
    path = write(tmp_path / "c.json", [BAD_ROWS[0]] * row + [BAD_ROWS[row]])  # the bad row at index `row`
    with pytest.raises(DataError, match=message) as caught:
        load({"c": entry(path, formatting="sharegpt")})
    assert "data.skip_malformed=true" in str(caught.value)


def test_skip_malformed_drops_and_counts(tmp_path, caplog):
    path = write(tmp_path / "c.json", BAD_ROWS)
    with caplog.at_level(logging.WARNING, logger="llmft.data.loader"):
        rows = load({"c": entry(path, formatting="sharegpt")}, skip_malformed=True)
    assert len(rows) == 1
    assert "dropped 3 of 4 malformed rows" in caplog.text


def test_check_dataset_files_lists_every_problem_without_heavy_imports():
    problems = check_dataset_files(
        {
            "ok": {"path": "llmft/data/demo/demo_sft.json"},
            "gone": {"path": "data/gone.jsonl"},
            "odd": {"path": "llmft/data/demo/demo_sft.json", "formatting": "alpacca"},
            "pairs": {"path": "llmft/data/demo/demo_dpo.json", "ranking": True},
            "hub": {"path": "tatsu-lab/alpaca"},
        }
    )
    assert len(problems) == 3
    assert "dataset.gone.path: file 'data/gone.jsonl' not found" in problems[0]
    assert "dataset.odd: formatting 'alpacca' is unknown" in problems[1]
    assert "dataset.pairs: ranking: true needs columns.chosen and columns.rejected" in problems[2]
    # the config validator calls it before anything heavy is imported
    probe = "import sys, llmft.data.sources; print(sorted({'datasets', 'torch', 'transformers'} & set(sys.modules)))"
    assert (
        subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
        == "[]\n"
    )


# --- sampling and mixing ------------------------------------------------------------------------


@pytest.fixture
def two_datasets(tmp_path) -> dict:
    def numbered(name: str, n: int) -> DatasetConfig:
        rows = [{"instruction": f"{name} {i}", "output": "ok"} for i in range(n)]
        return entry(write(tmp_path / f"{name}.json", rows))

    return {"big": numbered("big", 30), "small": numbered("small", 6)}


def sources(rows: list[dict]) -> list[str]:
    return [row["messages"][0]["content"].split()[0] for row in rows]


def test_mix_concat_max_samples_and_num_samples(two_datasets):
    assert sources(load(two_datasets)) == ["big"] * 30 + ["small"] * 6
    assert sources(load(two_datasets, max_samples=4)) == ["big"] * 4 + ["small"] * 4
    two_datasets["small"].num_samples = 15  # repeats the 6 rows, then a random 3
    small = [r["messages"][0]["content"] for r in load({"small": two_datasets["small"]})]
    assert len(small) == 15 and small[:12] == [f"small {i}" for i in range(6)] * 2


def test_mix_interleave_with_probabilities(two_datasets):
    under = sources(load(two_datasets, mix_strategy="interleave_under", interleave_probs=[0.5, 0.5]))
    assert under.count("small") == 6 and under.count("big") < 30  # stops when small runs out
    over = sources(load(two_datasets, mix_strategy="interleave_over", interleave_probs=[0.8, 0.2]))
    assert over.count("big") >= 30 and over.count("small") >= 6  # goes on until both are used up
    assert over.count("big") > 2 * over.count("small")
    with pytest.raises(DataError, match="one probability per dataset"):
        load(two_datasets, mix_strategy="interleave_under", interleave_probs=[1.0])


# --- tokenise and mask --------------------------------------------------------------------------


def test_labels_are_the_assistant_replies_of_the_chat_template(tokenizer):
    encoded = encode_conversation(
        tokenizer, conversation_row(), cutoff_len=512, train_on_prompt=False, mask_history=False
    )
    messages = [{"role": "system", "content": SYSTEM}, *conversation_row()["messages"]]
    assert (
        encoded["input_ids"]
        == tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"]
    )
    assert labelled_text(tokenizer, encoded) == ["2 + 3 = 5.<|im_end|>", "tac<|im_end|>"]
    prompt = tokenizer.apply_chat_template(
        messages[:2], tokenize=True, return_dict=True, add_generation_prompt=True
    )
    assert set(encoded["labels"][: len(prompt["input_ids"])]) == {IGNORE_INDEX}
    assert encoded["attention_mask"] == [1] * len(encoded["input_ids"])


def test_mask_history_and_train_on_prompt(tokenizer):
    last_only = encode_conversation(
        tokenizer, conversation_row(), 512, train_on_prompt=False, mask_history=True
    )
    assert labelled_text(tokenizer, last_only) == ["tac<|im_end|>"]
    everything = encode_conversation(
        tokenizer, conversation_row(), 512, train_on_prompt=True, mask_history=False
    )
    assert everything["labels"] == everything["input_ids"]


def test_truncation_keeps_the_reply_and_cuts_the_prompt_on_the_left(tokenizer):
    long_prompt = conversation_row([(" ".join(["Reverse the word."] * 40), "tac")], system="")
    full = encode_conversation(tokenizer, long_prompt, 10_000, False, False)
    cut = encode_conversation(tokenizer, long_prompt, 24, False, False)
    assert len(cut["input_ids"]) == 24
    assert tokenizer.decode(full["input_ids"][-1:]) == "\n"  # layout after the reply's end-of-turn
    assert cut["input_ids"] == full["input_ids"][-25:-1]  # the 24 tokens that end with the reply
    assert labelled_text(tokenizer, cut) == ["tac<|im_end|>"]

    long_reply = conversation_row([("Spell it.", "-".join("abcdefghijklmnopqrstuvwxyz" * 4))], system="")
    prompt = tokenizer.apply_chat_template(
        long_reply["messages"][:1], add_generation_prompt=True, tokenize=False
    )
    prompt_len = len(tokenizer(prompt)["input_ids"])
    cut = encode_conversation(tokenizer, long_reply, 2 * prompt_len + 4, False, False)
    assert tokenizer.decode(cut["input_ids"]).startswith(prompt)  # a short prompt is kept whole...
    # ...and the reply fills the rest
    assert sum(label != IGNORE_INDEX for label in cut["labels"]) == prompt_len + 4
    # a prompt longer than half the window keeps half of it
    cut = encode_conversation(tokenizer, long_reply, prompt_len, False, False)
    assert sum(label != IGNORE_INDEX for label in cut["labels"]) == prompt_len - prompt_len // 2
    # even one token of room is a trained token
    assert [
        label != IGNORE_INDEX
        for label in encode_conversation(tokenizer, long_reply, 1, False, False)["labels"]
    ] == [True]


def test_a_sample_without_a_trainable_token_is_dropped_and_counted(tokenizer):
    hides_replies = copy.deepcopy(tokenizer)
    hides_replies.chat_template = (
        "{% for m in messages if m['role'] == 'user' %}{{ m['content'] }}\n{% endfor %}"
    )
    assert encode_conversation(hides_replies, conversation_row(), 512, False, False) is None
    rows = Dataset.from_list(
        [conversation_row(), {**conversation_row(), "messages": [], "text": "Snow is white."}],
        features=CANONICAL_FEATURES,
    )
    encoded, stats = pipeline.tokenise(rows, hides_replies, DataConfig(), "train", fingerprint="test")
    assert (len(encoded), stats["dropped"]) == (1, 1)


def test_text_rows(tokenizer):
    encoded = encode_text(tokenizer, "Snow is white.", cutoff_len=64)
    assert (
        encoded["input_ids"][0] == tokenizer.bos_token_id
        and encoded["input_ids"][-1] == tokenizer.eos_token_id
    )
    assert tokenizer.decode(encoded["input_ids"][1:-1]) == "Snow is white."
    assert encoded["labels"] == encoded["input_ids"]
    assert len(encode_text(tokenizer, "Snow is white. " * 20, cutoff_len=8)["input_ids"]) == 8


# --- the entry point and its cache --------------------------------------------------------------


@pytest.fixture
def configure(composed, tmp_path):
    """The config `python run.py <overrides>` hands over, with its tokenised-data cache in tmp_path."""

    def configure_with(*overrides: str):
        return composed(f"data.cache_dir={tmp_path / 'cache'}", "data.cutoff_len=64", "seed=3", *overrides)

    return configure_with


@pytest.fixture
def count_encodings(monkeypatch) -> list[int]:
    calls = [0]

    def counting(*args, **kwargs):
        calls[0] += 1
        return encode_conversation(*args, **kwargs)

    monkeypatch.setattr(pipeline, "encode_conversation", counting)
    return calls


def test_build_splits_tokenises_and_reuses_the_cache(
    configure, tokenizer, count_encodings, caplog, monkeypatch
):
    selected = ("dataset=[demo_sft,demo_pt]", "data.val_size=0.1")
    cfg = configure(*selected)
    with caplog.at_level(logging.INFO, logger="llmft.data.pipeline"):
        train, validation = pipeline.build_sft_datasets(cfg, tokenizer)
    assert (len(train), len(validation)) == (540, 60)
    assert train.column_names == ["input_ids", "labels"]
    assert count_encodings[0] > 0 and "540 samples from 540 rows" in caplog.text
    texts = [tokenizer.decode(ids) for ids in train[:40]["input_ids"]]
    assert any(t.startswith("<s>") for t in texts) and any("<|im_start|>assistant" in t for t in texts)

    first_calls, first_rows = count_encodings[0], train[:5]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="llmft.data.pipeline"):
        again, _ = pipeline.build_sft_datasets(cfg, tokenizer)
    assert count_encodings[0] == first_calls, "the unchanged data was tokenised again"
    assert "reusing tokenised data from" in caplog.text
    assert again[:5] == first_rows

    pipeline.build_sft_datasets(configure(*selected, "data.cutoff_len=32"), tokenizer)
    assert count_encodings[0] > first_calls, "a changed data setting must rebuild"
    calls = count_encodings[0]
    pipeline.build_sft_datasets(configure(*selected, "data.overwrite_cache=true"), tokenizer)
    assert count_encodings[0] > calls
    calls = count_encodings[0]
    monkeypatch.setattr(tokenizer, "chat_template", TEMPLATES["qwen"])
    pipeline.build_sft_datasets(cfg, tokenizer)
    assert count_encodings[0] > calls, "a changed chat template must rebuild"


def test_cache_notices_an_edited_source_file(tmp_path, configure, tokenizer, count_encodings):
    data = tmp_path / "mine.json"
    write(data, [{"instruction": "Add 1 and 1.", "output": "1 + 1 = 2."}] * 3)
    cfg = configure("dataset=demo_sft", f"dataset.demo_sft.path={data}", "data.val_size=1")
    train, validation = pipeline.build_sft_datasets(cfg, tokenizer)
    assert (len(train), len(validation)) == (2, 1)
    write(data, [{"instruction": "Add 1 and 2.", "output": "1 + 2 = 3."}] * 5)
    calls = count_encodings[0]
    train, _ = pipeline.build_sft_datasets(cfg, tokenizer)
    assert count_encodings[0] > calls and len(train) == 4


def test_sft_refuses_preference_data(configure, tokenizer):
    with pytest.raises(
        DataError, match=r"dataset.demo_dpo: .* holds preference pairs \(ranking: true\).*method=lora_dpo"
    ):
        pipeline.build_sft_datasets(configure("dataset=demo_dpo"), tokenizer)
