"""Data: dataset formats -> canonical rows -> chat template -> tokens with masked labels, cached.

Importing this package is cheap; the heavy parts (datasets, the tokenisation pipeline) load on
first use of the names below:

- build_sft_datasets(cfg, tokenizer) -> (train, validation | None)   llmft.data.pipeline
- build_pair_datasets / build_kto_datasets(cfg, tokenizer): TRL rows  llmft.data.preference
- build_dpo_datasets / build_reward_datasets: pairs tokenised        llmft.data.preference
- load_canonical(datasets, data, seed) -> Dataset of canonical rows  llmft.data.loader
- check_dataset_files(datasets_cfg) -> list of problems (no heavy imports)  llmft.data.sources
- TEMPLATES, apply_template(tokenizer, name)                         llmft.data.templates
- encode_conversation, encode_text                                   llmft.data.tokenize
- DataError                                                          llmft.data.errors
"""

from __future__ import annotations

import importlib
from typing import Any

_PUBLIC = {
    "build_sft_datasets": "llmft.data.pipeline",
    "build_pair_datasets": "llmft.data.preference",
    "build_dpo_datasets": "llmft.data.preference",
    "build_reward_datasets": "llmft.data.preference",
    "build_kto_datasets": "llmft.data.preference",
    "load_canonical": "llmft.data.loader",
    "check_dataset_files": "llmft.data.sources",
    "TEMPLATES": "llmft.data.templates",
    "apply_template": "llmft.data.templates",
    "encode_conversation": "llmft.data.tokenize",
    "encode_text": "llmft.data.tokenize",
    "DataError": "llmft.data.errors",
}

__all__ = list(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'llmft.data' has no attribute {name!r}")
    return getattr(importlib.import_module(_PUBLIC[name]), name)
