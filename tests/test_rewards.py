"""Built-in reward functions, how method.reward_funcs names them, and the prompts they are given."""

from __future__ import annotations

import pytest
from conftest import compose

from llmft.data.errors import DataError
from llmft.train.rewards import (
    Contains,
    LengthInRange,
    MatchesReference,
    build_reward_funcs,
    total_rewards,
)


def shout(prompts, completions, suffix="!", **columns):
    """A user's own reward function, named by a Hydra spec in the tests below."""
    return [float(completion.endswith(suffix)) for completion in completions]


def test_contains_rewards_the_text_once_or_per_occurrence():
    assert Contains("cat")([""] * 3, ["a cat", "dog", "cat cat cat"]) == [1.0, 0.0, 1.0]
    assert Contains("cat", max_count=2)([""] * 3, ["a cat", "dog", "cat cat cat"]) == [0.5, 0.0, 1.0]
    assert Contains("Cat", ignore_case=True)([""], ["CAT"]) == [1.0]
    assert Contains("cat").__name__ != Contains("dog").__name__  # TRL logs each reward under its name


def test_length_in_range_is_one_inside_and_falls_off_outside():
    reward = LengthInRange(min_chars=4, max_chars=8)
    assert reward([""] * 4, ["abcdef", "ab", "a" * 10, "a" * 30]) == [1.0, 0.5, 0.5, 0.0]


def test_matches_reference_gives_full_credit_for_the_answer_and_partial_for_shared_words():
    reward = MatchesReference()
    scores = reward([""] * 3, ["The Flow.", "flow water", "rock"], reference=["the flow", "flow", "flow"])
    assert scores[0] == 1.0 and 0 < scores[1] < 1 and scores[2] == 0.0
    assert MatchesReference(partial=False)([""], ["flow water"], reference=["flow"]) == [0.0]


def test_reward_funcs_accept_builtin_names_classes_and_functions():
    funcs = build_reward_funcs(
        [
            "match_reference",
            {"_target_": "llmft.train.rewards.Contains", "text": "ok", "max_count": 2},
            {"_target_": "test_rewards.shout", "suffix": "?"},
        ]
    )
    assert isinstance(funcs[0], MatchesReference) and funcs[1].max_count == 2
    assert funcs[2].__name__ == "shout"  # TRL needs the name to log the reward
    totals = total_rewards(funcs, ["p", "p"], ["ok ok?", "nope"], reference=["ok ok", "x"])
    assert totals == [1.0 + 1.0 + 1.0, 0.0]


def test_an_unknown_reward_name_lists_the_builtins():
    with pytest.raises(ValueError, match=r"method.reward_funcs\[0\]='contains'.*match_reference"):
        build_reward_funcs(["contains"])


def test_a_reward_target_that_does_not_exist_names_it():
    with pytest.raises(Exception, match="no_such_reward"):
        build_reward_funcs([{"_target_": "llmft.train.rewards.no_such_reward"}])


def test_none_from_a_reward_function_counts_as_zero():
    assert total_rewards([lambda prompts, completions, **_: [None, 2.0]], ["", ""], ["a", "b"]) == [0.0, 2.0]


# --- the prompt dataset the rewards see -------------------------------------------------------


def prompt_rows(*overrides: str):
    from llmft.data.prompts import build_prompt_dataset
    from llmft.model.loader import load_tokenizer

    cfg = compose("logger=none", *overrides)
    return build_prompt_dataset(cfg, load_tokenizer(cfg.model))


def test_prompts_stop_before_the_reply_and_keep_it_as_reference():
    rows = prompt_rows("dataset=demo_sft", "data.max_samples=20")
    row = rows[0]
    assert row["prompt"].endswith("<|im_start|>assistant\n")  # the generation prompt, nothing of the reply
    assert row["messages"][-1]["role"] == "user"
    assert row["reference"] and row["reference"] not in row["prompt"]


def test_preference_rows_give_their_chosen_reply_as_reference():
    import json

    from conftest import ROOT

    rows = prompt_rows("dataset=demo_dpo", "data.max_samples=5")
    chosen = {row["chosen"] for row in json.loads((ROOT / "llmft/data/demo/demo_dpo.json").read_text())}
    assert set(rows["reference"]) <= chosen


def test_plain_text_data_has_no_prompts():
    with pytest.raises(DataError, match="conversational dataset"):
        prompt_rows("dataset=demo_pt", "data.max_samples=5")
