"""From the composed config to tokenised train/validation datasets, cached on disk."""

from __future__ import annotations

import logging
import os
from typing import Any

import pyarrow.compute as pc
from datasets import Dataset, Features, List, Value

from llmft.data.cache import cache_dir, cache_key, load_cached, save_cached
from llmft.data.errors import DataError
from llmft.data.loader import load_canonical
from llmft.data.packing import pack
from llmft.data.sources import require_data_kind
from llmft.data.tokenize import IGNORE_INDEX, encode_conversation, encode_text

logger = logging.getLogger(__name__)
ROWS_PER_WORKER = 1000

TOKEN_FEATURES = Features(
    {
        "input_ids": List(Value("int32")),
        "labels": List(Value("int32")),
    }
)  # no attention mask: the collators know where each sample ends


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


def _encode_batch(batch: dict[str, list], tokenizer: Any, data: Any) -> dict[str, list]:
    """Encode canonical rows (text rows as plain text); a row left without a trainable token yields none."""
    out: dict[str, list] = {key: [] for key in TOKEN_FEATURES}
    for values in zip(*batch.values(), strict=True):
        row = dict(zip(batch, values, strict=True))
        if row["text"] is not None:
            encoded = encode_text(tokenizer, row["text"], data.cutoff_len)
        else:
            encoded = encode_conversation(
                tokenizer, row, data.cutoff_len, data.train_on_prompt, data.mask_history
            )
        if encoded is not None:
            for key in out:
                out[key].append(encoded[key])
    return out


def worker_count(num_proc: int | None, rows: int) -> int:
    """data.num_proc, or by default one process per core for every ROWS_PER_WORKER rows (forking costs
    more than small data takes to tokenise)."""
    if num_proc is not None:
        return max(1, num_proc)
    return max(1, min(len(os.sched_getaffinity(0)), rows // ROWS_PER_WORKER))


def tokenise(
    rows: Dataset, tokenizer: Any, data: Any, split: str, fingerprint: str
) -> tuple[Dataset, dict[str, int]]:
    """Tokenised samples and their statistics; samples left without a trainable token are dropped."""
    workers = worker_count(data.num_proc, len(rows))
    encoded = rows.map(
        _encode_batch,
        fn_kwargs={"tokenizer": tokenizer, "data": data},
        batched=True,
        remove_columns=rows.column_names,
        features=TOKEN_FEATURES,
        keep_in_memory=True,
        num_proc=workers if workers > 1 else None,
        new_fingerprint=f"{fingerprint}-{split}",  # the cache key already identifies the result
        desc=f"Tokenising {split}",
    )
    if not len(encoded):
        raise DataError(
            f"{split}: no sample keeps a trainable token within data.cutoff_len={data.cutoff_len}. "
            "Fix: raise data.cutoff_len."
        )
    lengths = pc.list_value_length(encoded.data.column("input_ids"))
    labels = pc.list_flatten(encoded.data.column("labels"))
    stats = {
        "rows": len(rows),
        "samples": len(encoded),
        "dropped": len(rows) - len(encoded),
        "tokens": pc.sum(lengths).as_py(),
        "trainable_tokens": pc.sum(pc.not_equal(labels, IGNORE_INDEX)).as_py(),
    }
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
        if "packed_rows" in figures:
            logger.info(
                "%s: packed into %d rows of at most %d tokens", split, figures["packed_rows"], cutoff_len
            )


def packing_enabled(cfg: Any) -> bool:
    """method.packing (true in the pt presets) wins over data.packing."""
    return cfg.data.packing if cfg.method.packing is None else cfg.method.packing


def build_sft_datasets(cfg: Any, tokenizer: Any) -> tuple[Dataset, Dataset | None]:
    """Train (and validation, with data.val_size) datasets of input_ids and labels, packed into rows of
    data.cutoff_len tokens (with each row's seq_lengths) when packing is on.

    cfg is the composed config (cfg.dataset, cfg.data, cfg.method, cfg.seed); the tokenizer carries the
    chat template. Results are cached under data.cache_dir and reused while nothing they depend on
    changes: a warm start reads them back without a pass over the data.
    """
    data, seed, packed = cfg.data, cfg.seed, packing_enabled(cfg)
    require_data_kind(cfg.dataset, "text" if cfg.method.stage == "pt" else "chats")
    key = cache_key(cfg.dataset, data, seed, tokenizer, packed=packed)
    directory = cache_dir(data) / key
    if not data.overwrite_cache and (cached := load_cached(directory)) is not None:
        train, validation, stats = cached
        logger.info("reusing tokenised data from %s (data.overwrite_cache=true rebuilds it)", directory)
        _log_stats(stats, data.cutoff_len)
        return train, validation

    rows = load_canonical(cfg.dataset, data, seed).shuffle(seed=seed)
    train_rows, validation_rows = split_validation(rows, data.val_size)
    splits = {"train": train_rows, "validation": validation_rows}
    tokenised, all_stats = {}, {}
    for split, split_rows in splits.items():
        if split_rows is None:
            continue
        tokenised[split], all_stats[split] = tokenise(split_rows, tokenizer, data, split, key)
        if packed:
            tokenised[split] = pack(tokenised[split], data.cutoff_len)
            all_stats[split]["packed_rows"] = len(tokenised[split])
    _log_stats(all_stats, data.cutoff_len)
    train, validation = tokenised["train"], tokenised.get("validation")
    save_cached(directory, train, validation, all_stats)
    logger.info("tokenised data cached in %s", directory)
    return train, validation
