"""Preference and KTO data for the rm/dpo/kto stages, and the compose-time checks of what a stage trains on."""

from __future__ import annotations

import json
import types
from pathlib import Path

import pytest
from conftest import compose

from llmft.config.errors import ConfigError
from llmft.data import DataError
from llmft.main import check, run

WORDS = (
    "cat dog sun tree book fish bird milk rain star moon lamp cake ship frog rose wolf bear coin door".split()
)


def write_pairs(path: Path, count: int) -> Path:
    """An easy rule a tiny model learns in a few dozen steps: the reply calling the thing good wins."""
    rows = [
        {
            "instruction": f"Describe the {WORDS[i % len(WORDS)]}.",
            "input": str(i),
            "chosen": f"The {WORDS[i % len(WORDS)]} is good.",
            "rejected": f"The {WORDS[i % len(WORDS)]} is bad.",
        }
        for i in range(count)
    ]
    path.write_text(json.dumps(rows))
    return path


def pairs_dataset(path: Path) -> tuple[str, ...]:
    """Overrides that select the pairs file written by write_pairs."""
    return ("dataset=demo_dpo", f"dataset.demo_dpo.path={path}")


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            ["method=lora_dpo", "dataset=demo_sft"],
            "dataset.demo_sft: method.stage=dpo trains on preference pairs",
        ),
        (
            ["method=lora_rm", "dataset=demo_kto"],
            "dataset.demo_kto: method.stage=rm trains on preference pairs",
        ),
        (
            ["method=lora_kto", "dataset=demo_sft"],
            "dataset.demo_sft: method.stage=kto needs desirable/undesirable",
        ),
        (["method=lora_pt", "dataset=demo_sft"], "dataset.demo_sft: method.stage=pt trains on plain text"),
        (
            ["method=lora_sft", "dataset=demo_dpo"],
            "holds preference pairs (ranking: true). Fix: pick a method",
        ),
        (["method=lora_sft", "dataset=demo_kto"], "holds KTO labels (columns.kto_tag)"),
        (
            ["method=lora_dpo", "dataset=demo_dpo", "method.pref_loss=kto"],
            "method.pref_loss='kto' is not one of",
        ),
        (
            ["method=lora_dpo", "dataset=demo_dpo", "dataset.demo_dpo.columns.rejected=null"],
            "needs columns.chosen",
        ),
    ],
)
def test_a_stage_given_the_wrong_kind_of_data_fails_at_compose_time(overrides, expected):
    with pytest.raises(ConfigError) as failure:
        check(compose(*overrides))
    assert expected in str(failure.value)


@pytest.mark.parametrize(
    ("method", "dataset"),
    [
        ("lora_dpo", "demo_dpo"),
        ("lora_rm", "demo_dpo"),
        ("lora_kto", "demo_kto"),
        ("lora_kto", "demo_dpo"),
        ("lora_pt", "demo_pt"),
        ("full_pt", "demo_pt"),
        ("lora_orpo", "demo_dpo"),
        ("lora_simpo", "demo_dpo"),
    ],
)
def test_each_stage_accepts_its_demo_data(method, dataset):
    check(compose(f"method={method}", f"dataset={dataset}"))


def test_pairs_without_a_rejected_column_fail_before_the_model_loads(tmp_path):
    rows = [{"instruction": "Say hi.", "input": "", "chosen": "Hi."}]
    path = tmp_path / "pairs.json"
    path.write_text(json.dumps(rows))
    cfg = compose("method=lora_dpo", "logger=none", *pairs_dataset(path))
    with pytest.raises(DataError, match=r"dataset 'demo_dpo': column\(s\) 'rejected' not found"):
        run(cfg, run_dir=tmp_path / "run")
    assert not (tmp_path / "run" / "trainer_log.jsonl").exists()


def test_pairs_keep_the_system_prompt_and_history_in_the_prompt(tmp_path):
    from llmft.data import build_pair_datasets
    from llmft.model.loader import load_tokenizer

    rows = [
        {
            "system": "Be brief.",
            "conversations": [
                {"from": "human", "value": "Add 1 and 1."},
                {"from": "gpt", "value": "2"},
                {"from": "human", "value": "And 2 and 2?"},
            ],
            "chosen": {"from": "gpt", "value": "4"},
            "rejected": {"from": "gpt", "value": "5"},
        }
    ]
    path = tmp_path / "sharegpt_pairs.json"
    path.write_text(json.dumps(rows))
    entry = "{path: %s, formatting: sharegpt, ranking: true, columns: {system: system, chosen: chosen, rejected: rejected}}"
    cfg = compose("method=lora_dpo", "dataset=demo_dpo", f"dataset.demo_dpo={entry % path}")
    check(cfg)
    train, validation = build_pair_datasets(cfg, load_tokenizer(cfg.model))
    assert validation is None
    assert train[0] == {
        "prompt": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Add 1 and 1."},
            {"role": "assistant", "content": "2"},
            {"role": "user", "content": "And 2 and 2?"},
        ],
        "chosen": [{"role": "assistant", "content": "4"}],
        "rejected": [{"role": "assistant", "content": "5"}],
        "tools": None,
    }


def test_kto_splits_each_pair_into_a_desirable_and_an_undesirable_row(tmp_path):
    from llmft.data import build_kto_datasets
    from llmft.model.loader import load_tokenizer

    cfg = compose(
        "method=lora_kto", *pairs_dataset(write_pairs(tmp_path / "pairs.json", 6)), "data.val_size=2"
    )
    train, validation = build_kto_datasets(cfg, load_tokenizer(cfg.model))
    assert (len(train), len(validation)) == (8, 4)
    for row in train:
        reply = row["completion"][0]["content"]
        assert row["label"] == reply.endswith("good."), row
    assert sum(train["label"]) == 4


def test_kto_rows_keep_their_tag_and_the_reply_leaves_the_prompt():
    from llmft.data import build_kto_datasets
    from llmft.model.loader import load_tokenizer

    cfg = compose("method=lora_kto", "dataset=demo_kto", "data.max_samples=20")
    train, _ = build_kto_datasets(cfg, load_tokenizer(cfg.model))
    source = json.loads(Path("llmft/data/demo/demo_kto.json").read_text())[:20]
    assert sorted(train["label"]) == sorted(row["label"] for row in source)
    assert all(
        row["prompt"][-1]["role"] == "user" and row["completion"][0]["role"] == "assistant" for row in train
    )


@pytest.mark.parametrize(
    ("builder", "dataset", "expected"),
    [
        (
            "build_pair_datasets",
            "demo_kto",
            r"dataset.demo_kto: this stage \(pairs\) trains on preference pairs",
        ),
        (
            "build_kto_datasets",
            "demo_sft",
            r"dataset.demo_sft: this stage \(labels\) needs desirable/undesirable labels or preference pairs",
        ),
    ],
)
def test_the_builders_refuse_data_of_the_wrong_kind_when_called_directly(builder, dataset, expected):
    import llmft.data

    cfg = compose(f"dataset={dataset}")
    with pytest.raises(DataError, match=expected):
        getattr(llmft.data, builder)(cfg, tokenizer=None)


def _pairs_with_more_turns_and_a_long_prompt(tmp_path: Path, cutoff_len: int):
    rows = json.loads(Path("llmft/data/demo/demo_dpo.json").read_text())[:40]
    rows[0]["system"], rows[1]["history"] = "Answer in one word.", [["Hi.", "Hello."]]
    rows[2]["instruction"] = "Tell me, in as many words as it takes, " * 4 + rows[2]["instruction"]
    path = tmp_path / "pairs.json"
    path.write_text(json.dumps(rows))
    columns = "{chosen: chosen, rejected: rejected, system: system, history: history}"
    entry = f"{{path: {path}, formatting: alpaca, ranking: true, columns: {columns}}}"
    return compose(
        "method=lora_dpo", "dataset=demo_dpo", f"dataset.demo_dpo={entry}", f"data.cutoff_len={cutoff_len}"
    )


@pytest.mark.parametrize("cutoff_len", [512, 40])  # 40: a long prompt does not fit, and both drop its pair
@pytest.mark.parametrize(
    ("builder", "trainer"), [("build_dpo_datasets", "DPOTrainer"), ("build_reward_datasets", "RewardTrainer")]
)
def test_pairs_are_tokenised_into_the_cache_exactly_as_trl_would(tmp_path, cutoff_len, builder, trainer):
    """DPO and reward pairs are tokenised once, into llmft's cache, as TRL's own trainer would tokenise and
    filter the conversation rows (which it did in every run's start, in its own pass)."""
    import trl

    import llmft.data
    from llmft.model.loader import chat_tokenizer

    cfg = _pairs_with_more_turns_and_a_long_prompt(tmp_path, cutoff_len)
    tokenizer = chat_tokenizer(cfg.model)
    conversations, _ = llmft.data.build_pair_datasets(cfg, tokenizer)
    trl_args = types.SimpleNamespace(
        dataset_num_proc=None, max_length=cutoff_len, truncation_mode="keep_start"
    )
    expected = getattr(trl, trainer)._prepare_dataset(None, conversations, tokenizer, trl_args, "train")

    tokenised, _ = getattr(llmft.data, builder)(cfg, tokenizer)
    assert cutoff_len == 512 or len(tokenised) < len(conversations)
    assert tokenised.column_names and set(tokenised.column_names) <= set(expected.column_names)
    for column in tokenised.column_names:
        assert tokenised[column] == expected[column], column


@pytest.mark.parametrize(
    ("build_trainer", "stage"),
    [
        ("llmft.train.dpo:build_dpo_trainer", "method=lora_dpo"),
        ("llmft.train.rm:build_rm_trainer", "method=lora_rm"),
    ],
)
def test_a_warm_cache_starts_training_pairs_without_rendering_one(
    tmp_path, monkeypatch, build_trainer, stage
):
    from llmft.config.imports import import_entry_point
    from llmft.model.loader import chat_tokenizer

    cfg = compose(stage, "dataset=demo_dpo", "data.max_samples=16", f"data.cache_dir={tmp_path}")
    build = import_entry_point(build_trainer)
    build(cfg, tmp_path / "cold")
    renders = []
    tokenizer_class = type(chat_tokenizer(cfg.model))
    render = tokenizer_class.apply_chat_template
    monkeypatch.setattr(
        tokenizer_class, "apply_chat_template", lambda *a, **kw: renders.append(1) or render(*a, **kw)
    )
    trainer = build(cfg, tmp_path / "warm")
    assert renders == []  # neither llmft's cached build nor TRL's trainer rendered a pair again
    assert {"chosen_ids", "rejected_ids"} <= set(trainer.train_dataset.column_names)
    assert len(trainer.train_dataset) == 16  # and no pass over them dropped any
