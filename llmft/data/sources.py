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
from llmft.data.errors import DataError
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


# What each stage trains on; the builders of llmft.data need the same kinds.
STAGE_DATA = {
    "pt": "text",
    "sft": "chats",
    "rm": "pairs",
    "dpo": "pairs",
    "kto": "labels",
    "ppo": "prompts",
    "grpo": "prompts",
    "rloo": "prompts",
}


def data_kind_problems(datasets_cfg: Mapping[str, Any], kind: str, who: str) -> list[str]:
    """Each selected dataset holds the kind of data `who` (e.g. "method.stage=dpo") trains on: pairs, KTO
    labels (or pairs), plain text, chats without pairs or labels, or prompts (conversations)."""
    problems = []
    for name, entry in datasets_cfg.items():
        entry = as_dataset_config(entry)
        ranking, tagged, where = entry.ranking, bool(entry.columns.kto_tag), f"dataset.{name}: {who}"
        if kind == "pairs" and not ranking:
            problems.append(
                f"{where} trains on preference pairs, but the entry has no ranking: true. Fix: set ranking: true "
                "with columns.chosen and columns.rejected, or pick a pairs dataset (e.g. dataset=demo_dpo)."
            )
        elif kind == "labels" and not (ranking or tagged):
            problems.append(
                f"{where} needs desirable/undesirable labels or preference pairs, but the entry has neither. "
                "Fix: map the label with columns.kto_tag, set ranking: true, or pick dataset=demo_kto."
            )
        elif kind == "text" and entry.formatting != "text":
            problems.append(
                f"{where} trains on plain text, but the entry is formatting: {entry.formatting}. Fix: use "
                "formatting: text with columns.text naming the text column, or pick dataset=demo_pt."
            )
        elif kind == "chats" and (ranking or tagged):
            held = "preference pairs (ranking: true)" if ranking else "KTO labels (columns.kto_tag)"
            problems.append(
                f"{where} would train on every reply, but the entry holds {held}. Fix: pick a method for it "
                "(method=lora_dpo, lora_rm or lora_kto), or an SFT dataset."
            )
        elif kind == "prompts" and entry.formatting == "text":
            problems.append(
                f"{where} samples replies to prompts, but the entry is plain text. "
                "Fix: pick a conversational dataset (e.g. dataset=demo_sft)."
            )
    return problems


def require_data_kind(datasets_cfg: Mapping[str, Any], kind: str) -> None:
    """The same rule for a builder called without the compose-time checks (they ran for run.py)."""
    if problems := data_kind_problems(datasets_cfg, kind, f"this stage ({kind})"):
        raise DataError("\n".join(problems))
