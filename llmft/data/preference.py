"""Preference (chosen/rejected) and KTO (desirable/undesirable) data for TRL's trainers, cached on disk.

Rows leave here in TRL's conversational form, so the trainers render them with the tokenizer's chat
template, the same template SFT data is rendered with (llmft.data.templates sets it)::

    pairs: {"prompt": [messages], "chosen": [assistant message], "rejected": [assistant message], "tools"}
    KTO:   {"prompt": [messages], "completion": [assistant message], "label": bool, "tools"}

A system prompt becomes the prompt's first message; tools stay a JSON string (TRL parses it) or None.
DPO's pairs are tokenised here, into the cache, as TRL's DPOTrainer would tokenise them::

    DPO pairs: {"prompt_ids": [int], "chosen_ids": [int], "rejected_ids": [int]}
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


def _tokenize_pairs(batch: dict[str, list], tokenizer: Any) -> dict[str, list]:
    """TRL's DPO tokenisation: the prompt rendered with the generation prompt, each reply as the tokens of
    prompt + reply after the prefix the prompt shares with both renderings (a template may render a prompt
    alone differently)."""
    out: dict[str, list] = {key: [] for key in DPO_FEATURES}
    for prompt, chosen, rejected, tools in zip(*(batch[key] for key in PAIR_FEATURES), strict=True):
        render = partial(
            tokenizer.apply_chat_template,
            tokenize=True,
            return_dict=True,
            tools=json.loads(tools) if tools else None,
        )
        prompt_ids = render(prompt, add_generation_prompt=True)["input_ids"]
        chosen_ids, rejected_ids = (render(prompt + reply)["input_ids"] for reply in (chosen, rejected))
        shared = min(_common_prefix(prompt_ids, chosen_ids), _common_prefix(prompt_ids, rejected_ids))
        out["prompt_ids"].append(prompt_ids[:shared])
        out["chosen_ids"].append(chosen_ids[shared:])
        out["rejected_ids"].append(rejected_ids[shared:])
    return out


def dpo_pairs(rows: Dataset, tokenizer: Any, cutoff_len: int, num_proc: int | None) -> Dataset:
    """Canonical ranking rows as TRL's DPOTrainer tokenises them, without pairs whose prompt alone fills
    cutoff_len: their truncation (TRL keeps the start) would leave no reply token, and TRL drops them too."""
    pairs = pair_rows(rows)
    workers = worker_count(num_proc, len(pairs))
    tokenized = pairs.map(
        _tokenize_pairs,
        fn_kwargs={"tokenizer": tokenizer},
        batched=True,
        remove_columns=pairs.column_names,
        features=DPO_FEATURES,
        keep_in_memory=True,
        num_proc=workers if workers > 1 else None,
        desc="Tokenising pairs",
    )
    kept = tokenized.filter(
        lambda batch: [len(prompt) < cutoff_len for prompt in batch["prompt_ids"]],
        batched=True,
        keep_in_memory=True,
    )
    if not len(kept):
        raise DataError(
            f"no pair's prompt fits within data.cutoff_len={cutoff_len} with a reply token to spare. "
            "Fix: raise data.cutoff_len."
        )
    if dropped := len(tokenized) - len(kept):
        logger.info("%d pairs dropped: the prompt alone fills data.cutoff_len=%d", dropped, cutoff_len)
    return kept


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
    to_trl = partial(
        dpo_pairs, tokenizer=tokenizer, cutoff_len=cfg.data.cutoff_len, num_proc=cfg.data.num_proc
    )
    return _build(cfg, tokenizer, "dpo", to_trl)


def build_kto_datasets(cfg: Any, tokenizer: Any) -> tuple[Dataset, Dataset | None]:
    """Train (and validation) KTO rows; pairs are split after holding out validation rows."""
    require_data_kind(cfg.dataset, "labels")
    return _build(cfg, tokenizer, "kto", kto_rows)
