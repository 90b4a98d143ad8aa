"""LLaMA-Factory's dataset_info.json -> one llmft dataset entry (conf/dataset/<name>.yaml) per registry entry.

The fields mean the same in both (llmft's DatasetConfig was modelled on them); what differs:
- the source: file_name (resolved against the registry's folder) becomes `path`; hf_hub_url a hub `path`;
  ms_hub_url a ModelScope id (`hub: modelscope`, or `ms_path` beside a Hugging Face id, picked by
  USE_MODELSCOPE_HUB as LLaMA-Factory does);
- pre-training text: LLaMA-Factory reads it as an alpaca entry naming only a prompt column (or a .txt
  file); llmft calls that `formatting: text`.
Entries llmft cannot train on (images, videos, audios; loading scripts; cloud files) are reported, not written.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from llmft.config.paths import PROJECT_ROOT
from llmft.config.schema import DatasetColumns, RoleTags
from llmft.migrate.report import Report

COLUMN_KEYS = tuple(DatasetColumns.__dataclass_fields__)
TAG_KEYS = tuple(RoleTags.__dataclass_fields__)
MEDIA_COLUMNS = ("images", "videos", "audios")
FORMATTINGS = ("alpaca", "sharegpt", "openai")
UNSUPPORTED_SOURCES = {
    "script_url": "a dataset loading script, which `datasets` no longer runs: save its rows as json/jsonl "
    "and register that file (file_name)",
    "cloud_file_name": "a file in S3/GCS: download it and register the local copy (file_name)",
    "om_hub_url": "the Modelers hub: download the data and register the local copy (file_name)",
}
PASSED_ON = ("subset", "split", "folder", "num_samples")
ENTRY_KEYS = {
    "hf_hub_url", "ms_hub_url", "file_name", "formatting", "ranking", "columns", "tags",
    *UNSUPPORTED_SOURCES, *PASSED_ON,
}  # fmt: skip


def entry_name(name: str) -> str:
    """A registry name as a Hydra option name (dots and other punctuation would break `dataset=<name>`)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)


def _shown_path(path: Path) -> str:
    """Inside the project, relative to its root (portable with the repo); elsewhere, absolute."""
    path = path.resolve()
    return str(path.relative_to(PROJECT_ROOT)) if path.is_relative_to(PROJECT_ROOT) else str(path)


def _is_text(entry: dict[str, Any], columns: dict[str, Any]) -> bool:
    """LLaMA-Factory's pre-training entries: a .txt file, or alpaca naming only the prompt (text) column."""
    if entry.get("formatting", "alpaca") != "alpaca" or entry.get("ranking"):
        return False
    return str(entry.get("file_name", "")).endswith(".txt") or set(columns) == {"prompt"}


def _source(name: str, entry: dict[str, Any], registry_dir: Path, report: Report) -> dict[str, Any]:
    hf, ms = entry.get("hf_hub_url"), entry.get("ms_hub_url")
    if hf and ms:  # LLaMA-Factory picks by USE_MODELSCOPE_HUB; so does llmft's hub: auto
        return {"path": hf, "source": "hub", "ms_path": ms}
    if hf:
        return {"path": hf, "source": "hub"}
    if ms:
        return {"path": ms, "source": "hub", "hub": "modelscope"}
    path = registry_dir / entry["file_name"]
    if not path.exists():
        report.note(f"{name}: {path} does not exist yet; llmft will say so when the dataset is selected")
    return {"path": _shown_path(path), "source": "file"}


def convert_entry(name: str, entry: dict[str, Any], registry_dir: Path, report: Report) -> dict | None:
    """The llmft entry (only what differs from llmft's defaults), or None when it cannot be converted."""
    columns = dict(entry.get("columns") or {})
    if media := [column for column in MEDIA_COLUMNS if column in columns]:
        report.not_mapped(name, f"{'/'.join(media)} columns: llmft trains text-only models")
        return None
    if not any(entry.get(key) for key in ("hf_hub_url", "ms_hub_url", "file_name")):
        unsupported = next((key for key in UNSUPPORTED_SOURCES if entry.get(key)), None)
        reason = UNSUPPORTED_SOURCES[unsupported] if unsupported else "no file_name, hf_hub_url or ms_hub_url"
        report.not_mapped(name, reason)
        return None
    formatting = entry.get("formatting", "alpaca")
    if formatting not in FORMATTINGS:
        report.not_mapped(name, f"formatting {formatting!r} is not one of {', '.join(FORMATTINGS)}")
        return None
    for key in sorted(set(entry) - ENTRY_KEYS):
        report.note(f"{name}: ignored unknown key {key!r}")
    for key in sorted(set(columns) - set(COLUMN_KEYS)):
        report.note(f"{name}: ignored unknown column key {key!r}")
        columns.pop(key)

    converted = _source(name, entry, registry_dir, report)
    if _is_text(entry, columns):  # .txt rows are always in the "text" column
        text_column = "text" if str(entry.get("file_name", "")).endswith(".txt") else columns["prompt"]
        converted["formatting"] = "text"
        if text_column != "text":
            converted["columns"] = {"text": text_column}
    else:
        if formatting != "alpaca":
            converted["formatting"] = formatting
        if entry.get("ranking"):
            converted["ranking"] = True
        if columns:
            converted["columns"] = columns
        if tags := {key: value for key, value in (entry.get("tags") or {}).items() if key in TAG_KEYS}:
            converted["tags"] = tags
    converted.update({key: entry[key] for key in PASSED_ON if entry.get(key) is not None})
    return converted


def _entry_yaml(name: str, original: str, registry: Path, entry: dict[str, Any]) -> str:
    header = (
        f"# Converted from LLaMA-Factory's {registry} (entry '{original}') by\n"
        f"# python -m llmft.migrate dataset-info.\n#   python run.py dataset={name}\n"
    )
    return header + yaml.safe_dump({name: entry}, sort_keys=False, allow_unicode=True)


def convert_registry(registry: Path, out_dir: Path, force: bool = False) -> Report:
    """Write out_dir/<name>.yaml for every convertible entry of a dataset_info.json."""
    try:
        entries = json.loads(registry.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"cannot read {registry} as a dataset_info.json: {err}") from None
    if not isinstance(entries, dict):
        raise ValueError(f"{registry} holds no registry: expected a JSON object of named entries.")
    report = Report()
    out_dir.mkdir(parents=True, exist_ok=True)
    for original, entry in entries.items():
        name = entry_name(original)
        converted = convert_entry(name, entry, registry.parent, report)
        if converted is None:
            continue
        target = out_dir / f"{name}.yaml"
        if target.exists() and not force:
            report.not_mapped(
                name, f"{target} exists (llmft's own entry, or converted before): --force replaces it"
            )
            continue
        target.write_text(_entry_yaml(name, original, registry, converted), encoding="utf-8")
        renamed = f" (renamed from '{original}')" if name != original else ""
        report.mapped(f"{name}{renamed} -> {target} ({converted.get('formatting', 'alpaca')})")
    return report
