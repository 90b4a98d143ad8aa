"""On-disk cache of tokenised datasets, keyed by everything that changes the tokens.

The key hashes the dataset entries, the data settings that shape samples, the seed, the local
source files' size and modification time, and the tokenizer (name, vocabulary and rules, chat
template). A hub dataset that changes upstream is not noticed: set data.overwrite_cache=true.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from datasets import Dataset, load_from_disk

from llmft.config.paths import cache_root, is_local_dataset, resolve_local_path
from llmft.data.sources import as_dataset_config

# Bump when the encoding itself changes, so caches written the old way are not reused.
CACHE_VERSION = 2
# Data settings that change the samples (packing, keyed on its own, and cache settings do not).
KEYED_DATA_SETTINGS = (
    "cutoff_len",
    "max_samples",
    "val_size",
    "train_on_prompt",
    "mask_history",
    "mix_strategy",
    "interleave_probs",
    "skip_malformed",
)


def cache_dir(data: Any) -> Path:
    return Path(data.cache_dir).expanduser() if data.cache_dir else cache_root() / "datasets"


def _file_state(path: str, source: str) -> list[tuple[str, int, int]]:
    """(name, size, mtime_ns) of the local file(s) behind an entry; [] for a hub dataset."""
    found = resolve_local_path(path) if is_local_dataset(path, source) else None
    if found is None:
        return []
    files = sorted(p for p in found.rglob("*") if p.is_file()) if found.is_dir() else [found]
    return [(str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files]


def _tokenizer_state(tokenizer: Any) -> dict[str, Any]:
    if getattr(tokenizer, "is_fast", False):
        rules = json.loads(tokenizer.backend_tokenizer.to_str())
        for per_call_setting in ("truncation", "padding"):
            rules.pop(per_call_setting, None)
    else:
        rules = sorted(tokenizer.get_vocab().items())
    return {
        "name_or_path": tokenizer.name_or_path,
        "class": type(tokenizer).__name__,
        "rules": hashlib.sha256(json.dumps(rules, sort_keys=True).encode()).hexdigest(),
        "special_tokens": {name: str(value) for name, value in tokenizer.special_tokens_map.items()},
        "chat_template": tokenizer.chat_template,
    }


def cache_key(
    datasets_cfg: Mapping[str, Any], data: Any, seed: int, tokenizer: Any, packed: bool = False
) -> str:
    entries = {name: dataclasses.asdict(as_dataset_config(entry)) for name, entry in datasets_cfg.items()}
    interleave = data.interleave_probs
    settings = {key: getattr(data, key) for key in KEYED_DATA_SETTINGS}
    settings["interleave_probs"] = list(interleave) if interleave is not None else None
    payload = {
        "version": CACHE_VERSION,
        "datasets": entries,
        "files": {name: _file_state(entry["path"], entry["source"]) for name, entry in entries.items()},
        "data": settings,
        "seed": seed,
        "packed": packed,
        "tokenizer": _tokenizer_state(tokenizer),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def load_cached(directory: Path) -> tuple[Dataset, Dataset | None, dict[str, Any]] | None:
    """The cached (train, validation, stats), or None when nothing complete is cached there."""
    if not (directory / "stats.json").is_file():
        return None
    train = load_from_disk(str(directory / "train"))
    validation = (
        load_from_disk(str(directory / "validation")) if (directory / "validation").is_dir() else None
    )
    return train, validation, json.loads((directory / "stats.json").read_text())


def save_cached(directory: Path, train: Dataset, validation: Dataset | None, stats: dict[str, Any]) -> None:
    """Write into a staging folder renamed into place, so concurrent runs never read half a cache."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
    train.save_to_disk(str(staging / "train"))
    if validation is not None:
        validation.save_to_disk(str(staging / "validation"))
    (staging / "stats.json").write_text(json.dumps(stats, indent=2))
    if directory.exists():  # data.overwrite_cache (other ranks may be replacing it at the same time)
        shutil.rmtree(directory, ignore_errors=True)
    try:
        staging.rename(directory)
    except OSError:  # another process cached the same data meanwhile
        shutil.rmtree(staging)
