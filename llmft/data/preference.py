"""Preference (chosen/rejected) and KTO (desirable/undesirable) data for TRL's trainers, cached on disk.

Rows leave here in TRL's conversational form, so the trainers render them with the tokenizer's chat
template, the same template SFT data is rendered with (llmft.data.templates sets it)::

    pairs: {"prompt": [messages], "chosen": [assistant message], "rejected": [assistant message], "tools"}
    KTO:   {"prompt": [messages], "completion": [assistant message], "label": bool, "tools"}

A system prompt becomes the prompt's first message; tools stay a JSON string (TRL parses it) or None.
DPO's and reward modelling's pairs are tokenised here, into the cache, as TRL's DPOTrainer and
RewardTrainer would tokenise them (and drop those that do not fit data.cutoff_len)::

    DPO pairs:    {"prompt_ids": [int], "chosen_ids": [int], "rejected_ids": [int]}
    reward pairs: {"chosen_ids": [int], "rejected_ids": [int]}   (each reply after the prompt)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from functools import partial
from typing import Any

from datasets import Dataset, Features, List, Value

from llmft.data.cache import cache_dir, cache_key, load_cached, save_cached
from llmft.data.canonical import prompt_and_reply
from llmft.data.errors import DataError
from llmft.data.loader import load_canonical
from llmft.data.pipeline import split_validation, worker_count
from llmft.data.sources import require_data_kind

logger = logging.getLogger(__name__)

MESSAGES = List({"role": Value("string"), "content": Value("string")})
PAIR_FEATURES = Features(
    {"prompt": MESSAGES, "chosen": MESSAGES, "rejected": MESSAGES, "tools": Value("string")}
)
KTO_FEATURES = Features(
    {"prompt": MESSAGES, "completion": MESSAGES, "label": Value("bool"), "tools": Value("string")}
)
TOKEN_IDS = List(Value("int32"))
DPO_FEATURES = Features({"prompt_ids": TOKEN_IDS, "chosen_ids": TOKEN_IDS, "rejected_ids": TOKEN_IDS})
REWARD_FEATURES = Features({"chosen_ids": TOKEN_IDS, "rejected_ids": TOKEN_IDS})


def _reply(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def pair_rows(rows: Dataset) -> Dataset:
    """Canonical ranking rows as TRL preference rows."""

    def convert(batch: dict[str, list]) -> dict[str, list]:
        out: dict[str, list] = {key: [] for key in PAIR_FEATURES}
        for values in zip(*batch.values(), strict=True):
            row = dict(zip(batch, values, strict=True))
            if row["chosen"] is None:
                raise DataError("a row without chosen/rejected replies reached a pairwise stage.")
            out["prompt"].append(prompt_and_reply(row)[0])
            out["chosen"].append(_reply(row["chosen"]))
            out["rejected"].append(_reply(row["rejected"]))
            out["tools"].append(row["tools"] or None)
        return out

    return rows.map(
        convert, batched=True, remove_columns=rows.column_names, features=PAIR_FEATURES, keep_in_memory=True
    )


def kto_rows(rows: Dataset) -> Dataset:
    """Canonical KTO rows as TRL unpaired rows; a ranking row gives a desirable and an undesirable row."""

    def convert(batch: dict[str, list]) -> dict[str, list]:
        out: dict[str, list] = {key: [] for key in KTO_FEATURES}

        def add(prompt: list, reply: str, label: bool, tools: str) -> None:
            out["prompt"].append(prompt)
            out["completion"].append(_reply(reply))
            out["label"].append(label)
            out["tools"].append(tools or None)

        for values in zip(*batch.values(), strict=True):
            row = dict(zip(batch, values, strict=True))
            prompt, reply = prompt_and_reply(row)
            if row["chosen"] is not None:
                add(prompt, row["chosen"], True, row["tools"])
                add(prompt, row["rejected"], False, row["tools"])
            elif row["kto_tag"] is not None:
                add(prompt, reply, row["kto_tag"], row["tools"])
            else:
                raise DataError(
                    "a row with neither a KTO label nor chosen/rejected replies reached the kto stage."
                )
        return out

    return rows.map(
        convert, batched=True, remove_columns=rows.column_names, features=KTO_FEATURES, keep_in_memory=True
    )


def _common_prefix(ids: list[int], other: list[int]) -> int:
    differ = (i for i, (a, b) in enumerate(zip(ids, other, strict=False)) if a != b)
    return next(differ, min(len(ids), len(other)))


def _token_ids(tokenizer: Any, messages: list, tools: str | None, **template_kwargs: Any) -> list[int]:
    """A conversation rendered with the chat template and tokenised, as TRL's trainers do it."""
    tools = json.loads(tools) if tools else None
    rendered = tokenizer.apply_chat_template(
        messages, tokenize=True, return_dict=True, tools=tools, **template_kwargs
    )
    return rendered["input_ids"]


def _dpo_ids(batch: dict[str, list], tokenizer: Any) -> dict[str, list]:
    """TRL's DPO tokenisation: the prompt rendered with the generation prompt, each reply as the tokens of
    prompt + reply after the prefix the prompt shares with both renderings (a template may render a prompt
    alone differently)."""
    out: dict[str, list] = {key: [] for key in DPO_FEATURES}
    for prompt, chosen, rejected, tools in zip(*(batch[key] for key in PAIR_FEATURES), strict=True):
        prompt_ids = _token_ids(tokenizer, prompt, tools, add_generation_prompt=True)
        chosen_ids, rejected_ids = (
            _token_ids(tokenizer, prompt + reply, tools) for reply in (chosen, rejected)
        )
        shared = min(_common_prefix(prompt_ids, chosen_ids), _common_prefix(prompt_ids, rejected_ids))
        out["prompt_ids"].append(prompt_ids[:shared])
        out["chosen_ids"].append(chosen_ids[shared:])
        out["rejected_ids"].append(rejected_ids[shared:])
    return out


def _reward_ids(batch: dict[str, list], tokenizer: Any) -> dict[str, list]:
    """TRL's reward-model tokenisation: the prompt followed by each reply, rendered whole."""
    out: dict[str, list] = {key: [] for key in REWARD_FEATURES}
    for prompt, chosen, rejected, tools in zip(*(batch[key] for key in PAIR_FEATURES), strict=True):
        out["chosen_ids"].append(_token_ids(tokenizer, prompt + chosen, tools))
        out["rejected_ids"].append(_token_ids(tokenizer, prompt + rejected, tools))
    return out


def _tokenised_pairs(
    rows: Dataset, tokenizer: Any, data: Any, encode: Callable, features: Features, fits: Callable, why: str
) -> Dataset:
    """Canonical ranking rows as pairs of token ids (`encode`, in data.num_proc workers), keeping those
    that `fits` data.cutoff_len (given a batch of them, it says which; the rest are dropped for `why`)."""
    pairs = pair_rows(rows)
    workers = worker_count(data.num_proc, len(pairs))
    tokenised = pairs.map(
        encode,
        fn_kwargs={"tokenizer": tokenizer},
        batched=True,
        remove_columns=pairs.column_names,
        features=features,
        keep_in_memory=True,
        num_proc=workers if workers > 1 else None,
        desc="Tokenising pairs",
    )
    kept = tokenised.filter(
        fits, fn_kwargs={"cutoff_len": data.cutoff_len}, batched=True, keep_in_memory=True
    )
    if not len(kept):
        raise DataError(
            f"no pair is left within data.cutoff_len={data.cutoff_len}: {why}. Fix: raise data.cutoff_len."
        )
    if dropped := len(tokenised) - len(kept):
        logger.info("%d pairs dropped within data.cutoff_len=%d: %s", dropped, data.cutoff_len, why)
    return kept


def dpo_pairs(rows: Dataset, tokenizer: Any, data: Any) -> Dataset:
    """Pairs as TRL's DPOTrainer tokenises them, and drops them: where the prompt alone fills the cutoff,
    truncation (which keeps the start) would leave no reply token."""
    return _tokenised_pairs(
        rows,
        tokenizer,
        data,
        _dpo_ids,
        DPO_FEATURES,
        fits=lambda batch, cutoff_len: [len(prompt) < cutoff_len for prompt in batch["prompt_ids"]],
        why="the prompt alone fills it",
    )


def reward_pairs(rows: Dataset, tokenizer: Any, data: Any) -> Dataset:
    """Pairs as TRL's RewardTrainer tokenises them, and drops them: a score reads a reply's last token, so
    a pair is kept whole or not at all."""
    return _tokenised_pairs(
        rows,
        tokenizer,
        data,
        _reward_ids,
        REWARD_FEATURES,
        fits=lambda batch, cutoff_len: [
            max(len(chosen), len(rejected)) <= cutoff_len
            for chosen, rejected in zip(batch["chosen_ids"], batch["rejected_ids"], strict=True)
        ],
        why="a prompt with its reply is longer",
    )


def _build(
    cfg: Any, tokenizer: Any, kind: str, to_trl: Callable[[Dataset], Dataset]
) -> tuple[Dataset, Dataset | None]:
    data, seed = cfg.data, cfg.seed
    # The tokenizer is in the key although rows stay text: its chat template decides how TRL renders them.
    directory = cache_dir(data) / f"{kind}-{cache_key(cfg.dataset, data, seed, tokenizer)}"
    if not data.overwrite_cache and (cached := load_cached(directory)) is not None:
        logger.info("reusing %s data from %s (data.overwrite_cache=true rebuilds it)", kind, directory)
        return cached[0], cached[1]

    rows = load_canonical(cfg.dataset, data, seed).shuffle(seed=seed)
    train_rows, validation_rows = split_validation(rows, data.val_size)
    train = to_trl(train_rows)
    validation = to_trl(validation_rows) if validation_rows is not None else None
    stats = {"train": {"rows": len(train_rows), "samples": len(train)}}
    if validation is not None:
        stats["validation"] = {"rows": len(validation_rows), "samples": len(validation)}
    logger.info("%s data: %s", kind, stats)
    save_cached(directory, train, validation, stats)
    return train, validation


def build_pair_datasets(cfg: Any, tokenizer: Any) -> tuple[Dataset, Dataset | None]:
    """Train (and validation, with data.val_size) preference pairs for the rm and dpo stages."""
    require_data_kind(cfg.dataset, "pairs")
    return _build(cfg, tokenizer, "pairs", pair_rows)


def build_dpo_datasets(cfg: Any, tokenizer: Any) -> tuple[Dataset, Dataset | None]:
    """Train (and validation) preference pairs tokenised for TRL's DPOTrainer (sigmoid, ipo, hinge)."""
    require_data_kind(cfg.dataset, "pairs")
    return _build(cfg, tokenizer, "dpo", partial(dpo_pairs, tokenizer=tokenizer, data=cfg.data))


def build_reward_datasets(cfg: Any, tokenizer: Any) -> tuple[Dataset, Dataset | None]:
    """Train (and validation) preference pairs tokenised for TRL's RewardTrainer."""
    require_data_kind(cfg.dataset, "pairs")
    return _build(cfg, tokenizer, "reward", partial(reward_pairs, tokenizer=tokenizer, data=cfg.data))


def build_kto_datasets(cfg: Any, tokenizer: Any) -> tuple[Dataset, Dataset | None]:
    """Train (and validation) KTO rows; pairs are split after holding out validation rows."""
    require_data_kind(cfg.dataset, "labels")
    return _build(cfg, tokenizer, "kto", kto_rows)
