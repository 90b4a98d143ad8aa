"""Dataset entries as typed configs, and cheap checks of them (no torch, no datasets import).

The config validator calls `check_dataset_files` right after composition, so a missing file or an
impossible entry fails in a second instead of after the model has loaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import OmegaConf

from llmft.config.paths import DATA_EXTENSIONS, is_local_dataset, resolve_local_path
from llmft.config.schema import DatasetConfig
from llmft.data.formats import config_problems
from llmft.data.templates import template_problems


def as_dataset_config(entry: Any) -> DatasetConfig:
    """A DatasetConfig from a DictConfig node, a plain mapping or a DatasetConfig (defaults filled in)."""
    if isinstance(entry, DatasetConfig):
        return entry
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(DatasetConfig), entry))


def check_dataset_files(datasets_cfg: Mapping[str, Any]) -> list[str]:
    """Problems with the selected dataset entries: unknown formatting, missing or unreadable local files."""
    problems = []
    for name, entry in datasets_cfg.items():
        cfg = as_dataset_config(entry)
        problems += [f"dataset.{name}: {problem}" for problem in config_problems(cfg)]
        if not is_local_dataset(cfg.path, cfg.source):
            continue
        path = resolve_local_path(cfg.path)
        if path is None:
            problems.append(
                f"dataset.{name}.path: file '{cfg.path}' not found (looked in the working directory and the "
                "project root). Fix the path, or set source: hub for a Hugging Face Hub dataset."
            )
        elif path.is_file() and path.suffix not in DATA_EXTENSIONS:
            problems.append(
                f"dataset.{name}.path: '{cfg.path}' is not a data file; use one of: {', '.join(DATA_EXTENSIONS)}."
            )
    return problems


def check_data_settings(cfg: Any) -> list[str]:
    """The data layer's compose-time problems with a composed config: dataset files and the chat template."""
    return check_dataset_files(cfg.dataset) + template_problems(cfg.model.template)
