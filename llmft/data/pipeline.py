"""From the composed config to tokenised train/validation datasets, cached on disk."""

from __future__ import annotations

import logging
from typing import Any

from datasets import Dataset, Features, List, Value

from llmft.data.cache import cache_dir, cache_key, load_cached, save_cached
from llmft.data.errors import DataError
from llmft.data.loader import load_canonical
from llmft.data.sources import as_dataset_config
from llmft.data.tokenize import IGNORE_INDEX, encode_conversation, encode_text

logger = logging.getLogger(__name__)

TOKEN_FEATURES = Features(
    {
        "input_ids": List(Value("int32")),
        "attention_mask": List(Value("int8")),
        "labels": List(Value("int32")),
    }
)


def _check_sft_entries(datasets_cfg: Any) -> None:
    """Preference and KTO data need their own stage: training on every reply would teach the bad ones too."""
    for name, entry in datasets_cfg.items():
        cfg = as_dataset_config(entry)
        if cfg.ranking or cfg.columns.kto_tag:
            kind = "preference pairs (ranking: true)" if cfg.ranking else "KTO labels (columns.kto_tag)"
            raise DataError(
                f"dataset '{name}' holds {kind}, which supervised training cannot use. Fix: pick a dpo/rm/kto "
                "method for it, or an SFT dataset."
            )


def split_validation(rows: Dataset, val_size: float) -> tuple[Dataset, Dataset | None]:
    """Hold out the first val_size rows (a fraction < 1, or a count >= 1) of already shuffled rows."""
    if not val_size:
        return rows, None
    held_out = int(val_size) if val_size >= 1 else max(1, round(len(rows) * val_size))
    if held_out >= len(rows):
        raise DataError(
            f"data.val_size={val_size} holds out {held_out} of {len(rows)} rows, leaving none to train on. "
            "Fix: lower data.val_size."
        )
    return rows.select(range(held_out, len(rows))), rows.select(range(held_out))


def tokenise(
    rows: Dataset, tokenizer: Any, data: Any, split: str, fingerprint: str
) -> tuple[Dataset, dict[str, int]]:
    """Encode canonical rows (text rows as plain text); drop samples left without a trainable token."""
    stats = {"rows": len(rows), "samples": 0, "dropped": 0, "tokens": 0, "trainable_tokens": 0}

    def encode_batch(batch: dict[str, list]) -> dict[str, list]:
        out: dict[str, list] = {key: [] for key in TOKEN_FEATURES}
        for values in zip(*batch.values(), strict=True):
            row = dict(zip(batch, values, strict=True))
            if row["text"] is not None:
                encoded = encode_text(tokenizer, row["text"], data.cutoff_len)
            else:
                encoded = encode_conversation(
                    tokenizer, row, data.cutoff_len, data.train_on_prompt, data.mask_history
                )
            if encoded is None:
                stats["dropped"] += 1
                continue
            stats["tokens"] += len(encoded["input_ids"])
            stats["trainable_tokens"] += sum(label != IGNORE_INDEX for label in encoded["labels"])
            for key in out:
                out[key].append(encoded[key])
        return out

    encoded = rows.map(
        encode_batch,
        batched=True,
        remove_columns=rows.column_names,
        features=TOKEN_FEATURES,
        keep_in_memory=True,
        new_fingerprint=f"{fingerprint}-{split}",  # the cache key already identifies the result
        desc=f"Tokenising {split}",
    )
    stats["samples"] = len(encoded)
    if not stats["samples"]:
        raise DataError(
            f"{split}: no sample keeps a trainable token within data.cutoff_len={data.cutoff_len}. "
            "Fix: raise data.cutoff_len."
        )
    return encoded, stats


def _log_stats(stats: dict[str, dict[str, int]], cutoff_len: int) -> None:
    for split, figures in stats.items():
        logger.info(
            "%s: %d samples from %d rows (%d dropped: no trainable token within cutoff_len=%d), "
            "%d tokens, %d trainable",
            split,
            figures["samples"],
            figures["rows"],
            figures["dropped"],
            cutoff_len,
            figures["tokens"],
            figures["trainable_tokens"],
        )


def build_sft_datasets(cfg: Any, tokenizer: Any) -> tuple[Dataset, Dataset | None]:
    """Train (and validation, with data.val_size) datasets of input_ids, attention_mask and labels.

    cfg is the composed config (cfg.dataset, cfg.data, cfg.seed); the tokenizer carries the chat
    template. Results are cached under data.cache_dir and reused while nothing they depend on changes.
    """
    data, seed = cfg.data, cfg.seed
    _check_sft_entries(cfg.dataset)
    key = cache_key(cfg.dataset, data, seed, tokenizer)
    directory = cache_dir(data) / key
    if not data.overwrite_cache and (cached := load_cached(directory)) is not None:
        train, validation, stats = cached
        logger.info("reusing tokenised data from %s (data.overwrite_cache=true rebuilds it)", directory)
        _log_stats(stats, data.cutoff_len)
        return train, validation

    rows = load_canonical(cfg.dataset, data, seed).shuffle(seed=seed)
    train_rows, validation_rows = split_validation(rows, data.val_size)
    train, stats = tokenise(train_rows, tokenizer, data, "train", key)
    all_stats = {"train": stats}
    validation = None
    if validation_rows is not None:
        validation, all_stats["validation"] = tokenise(validation_rows, tokenizer, data, "validation", key)
    _log_stats(all_stats, data.cutoff_len)
    save_cached(directory, train, validation, all_stats)
    logger.info("tokenised data cached in %s", directory)
    return train, validation
