"""Read the selected datasets, convert them to canonical rows and mix them into one Dataset."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from datasets import Dataset, Features, List, Value, concatenate_datasets, interleave_datasets, load_dataset

from llmft.config.hubs import MODELSCOPE_INSTALL, uses_modelscope
from llmft.config.paths import is_local_dataset, resolve_local_path
from llmft.config.schema import DataConfig, DatasetConfig
from llmft.data.canonical import CANONICAL_KEYS
from llmft.data.errors import DataError
from llmft.data.formats import config_problems, required_columns, to_canonical
from llmft.data.sources import as_dataset_config

logger = logging.getLogger(__name__)

CANONICAL_FEATURES = Features(
    {
        "system": Value("string"),
        "tools": Value("string"),
        "messages": List({"role": Value("string"), "content": Value("string")}),
        "chosen": Value("string"),
        "rejected": Value("string"),
        "kto_tag": Value("bool"),
        "text": Value("string"),
    }
)

FILE_BUILDERS = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet", ".txt": "text"}
STOPPING_STRATEGIES = {"interleave_under": "first_exhausted", "interleave_over": "all_exhausted"}


def _looks_empty(path: Path) -> bool:
    return path.is_file() and path.stat().st_size < 64 and path.read_bytes().strip() in (b"", b"[]", b"{}")


def _read_file(name: str, path: Path) -> Dataset:
    builder = "a data folder" if path.is_dir() else FILE_BUILDERS.get(path.suffix)
    if builder is None:
        raise DataError(f"dataset '{name}': cannot read '{path}'; use one of: {', '.join(FILE_BUILDERS)}.")
    if not os.access(path, os.R_OK):
        raise DataError(f"dataset '{name}': '{path}' is not readable (permission denied). Fix: chmod +r it.")
    try:
        if path.is_dir():  # a folder of data files, as `datasets` understands it
            dataset = load_dataset(str(path), split="train")
        else:
            dataset = load_dataset(builder, data_files=str(path), split="train")
    except Exception as exc:  # noqa: BLE001 - any reader failure becomes one message naming the file
        if _looks_empty(path):
            raise DataError(
                f"dataset '{name}': '{path}' is empty. Fix: add rows or deselect the dataset."
            ) from None
        # `datasets` wraps the parser's own, more telling, error; its first line says it
        reason = str(exc.__cause__ or exc).splitlines()[0]
        raise DataError(f"dataset '{name}': cannot read '{path}' as {builder}: {reason}") from exc
    if builder == "text":  # a .txt file holds one sample per line (its "text" column); blank lines are none
        dataset = dataset.filter(lambda row: bool(row["text"].strip()), keep_in_memory=True)
    return dataset


def _modelscope_download(name: str, dataset_id: str) -> str:
    """A local copy of a ModelScope dataset repository (ModelScope caches it)."""
    try:
        import modelscope
    except ImportError:
        raise DataError(
            f"dataset '{name}' comes from ModelScope, which needs {MODELSCOPE_INSTALL}."
        ) from None
    logger.info("dataset '%s': downloading %s from ModelScope", name, dataset_id)
    return modelscope.dataset_snapshot_download(dataset_id)


def _read_hub(name: str, cfg: DatasetConfig) -> Dataset:
    source = cfg.path
    if uses_modelscope(cfg.hub):  # its files are read like a local folder
        source = _modelscope_download(name, cfg.ms_path or cfg.path)
    return load_dataset(source, cfg.subset, data_dir=cfg.folder, split=cfg.split)


def _read(name: str, cfg: DatasetConfig) -> Dataset:
    if not is_local_dataset(cfg.path, cfg.source):
        return _read_hub(name, cfg)
    path = resolve_local_path(cfg.path)
    if path is None:
        raise DataError(
            f"dataset '{name}': file '{cfg.path}' not found (looked in the working directory and the project "
            "root). Fix the path, or set source: hub for a Hugging Face Hub dataset."
        )
    return _read_file(name, path)


def _check_columns(name: str, cfg: DatasetConfig, raw: Dataset) -> None:
    missing = [column for column in required_columns(cfg) if column not in raw.column_names]
    if missing:
        raise DataError(
            f"dataset '{name}': column(s) {', '.join(repr(c) for c in missing)} not found; the data has "
            f"{', '.join(raw.column_names)}. Fix: map them under dataset.{name}.columns "
            f"(formatting: {cfg.formatting})."
        )


def _sample(
    raw: Dataset, num_samples: int | None, max_samples: int | None, seed: int
) -> tuple[Dataset, list[int] | None]:
    """num_samples takes a random subset (or repeats the data); max_samples then caps it.

    Also returns the source row of each kept row (None: unchanged), so errors name the file's row.
    """
    if num_samples is None and (max_samples is None or max_samples >= len(raw)):
        return raw, None
    rows = list(range(len(raw)))
    if num_samples is not None:
        repeats, rest = divmod(num_samples, len(raw))
        rows = rows * repeats + np.random.default_rng(seed).permutation(len(raw))[:rest].tolist()
    if max_samples is not None:
        rows = rows[:max_samples]
    return raw.select(rows), rows


def _convert(
    name: str, cfg: DatasetConfig, raw: Dataset, source_rows: list[int] | None, skip_malformed: bool
) -> Dataset:
    def convert_batch(batch: dict[str, list], indices: list[int]) -> dict[str, list]:
        out: dict[str, list] = {key: [] for key in CANONICAL_KEYS}
        for offset, index in enumerate(indices):
            try:
                row = to_canonical({column: values[offset] for column, values in batch.items()}, cfg)
            except DataError as exc:
                if skip_malformed:
                    continue
                raise DataError(
                    f"dataset '{name}', row {index if source_rows is None else source_rows[index]}: {exc} "
                    "Or set data.skip_malformed=true to drop such rows."
                ) from None
            for key in CANONICAL_KEYS:
                out[key].append(row[key])
        return out

    converted = raw.map(
        convert_batch,
        batched=True,
        with_indices=True,
        remove_columns=raw.column_names,
        features=CANONICAL_FEATURES,
        keep_in_memory=True,
        desc=f"Converting {name}",
    )
    if dropped := len(raw) - len(converted):
        logger.warning(
            "dataset '%s': dropped %d of %d malformed rows (data.skip_malformed=true)",
            name,
            dropped,
            len(raw),
        )
    return converted


def load_one(name: str, entry: Any, data: DataConfig, seed: int) -> Dataset:
    """One dataset entry as canonical rows."""
    cfg = as_dataset_config(entry)
    if problems := config_problems(cfg):
        raise DataError(f"dataset '{name}': {'; '.join(problems)}.")
    raw = _read(name, cfg)
    if len(raw) == 0:
        raise DataError(f"dataset '{name}' ({cfg.path}) has no rows. Fix: add rows or deselect the dataset.")
    _check_columns(name, cfg, raw)
    raw, source_rows = _sample(raw, cfg.num_samples, data.max_samples, seed)
    converted = _convert(name, cfg, raw, source_rows, data.skip_malformed)
    if len(converted) == 0:
        raise DataError(
            f"dataset '{name}': every row was malformed and dropped; nothing is left to train on."
        )
    logger.info("dataset '%s': %d rows (%s, %s)", name, len(converted), cfg.formatting, cfg.path)
    return converted


def mix(parts: list[Dataset], names: list[str], data: DataConfig, seed: int) -> Dataset:
    """Concatenate, or interleave with data.interleave_probs (under: stop at the first exhausted dataset)."""
    if len(parts) == 1:
        return parts[0]
    if data.mix_strategy == "concat":
        return concatenate_datasets(parts)
    if data.mix_strategy not in STOPPING_STRATEGIES:
        choices = ", ".join(["concat", *STOPPING_STRATEGIES])
        raise DataError(f"data.mix_strategy={data.mix_strategy!r} is unknown; choose one of: {choices}.")
    probs = list(data.interleave_probs) if data.interleave_probs is not None else None
    if probs is not None and (len(probs) != len(parts) or abs(sum(probs) - 1.0) > 1e-6):
        raise DataError(
            f"data.interleave_probs={probs} must hold one probability per dataset ({', '.join(names)}) "
            "summing to 1."
        )
    return interleave_datasets(
        parts, probabilities=probs, seed=seed, stopping_strategy=STOPPING_STRATEGIES[data.mix_strategy]
    )


def load_canonical(datasets: Mapping[str, Any], data: DataConfig, seed: int) -> Dataset:
    """Every selected dataset entry, converted to canonical rows and mixed by data.mix_strategy."""
    if not datasets:
        raise DataError("no dataset selected: choose one with dataset=<name> (see conf/dataset/).")
    names = list(datasets)
    return mix([load_one(name, datasets[name], data, seed) for name in names], names, data, seed)
