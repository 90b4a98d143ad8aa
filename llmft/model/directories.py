"""What a model or adapter directory holds, read from its JSON files only (no torch, no weights):
the compose-time checks and the loader ask the same questions here."""

from __future__ import annotations

import json
from pathlib import Path

from llmft.config.paths import resolve_local_path
from llmft.config.run_dir import RESULT_DIRS


def looks_like_path(name: str) -> bool:
    """A local path rather than a hub id ('org/name'): absolute, relative with a dot, home, or deeper."""
    return name.startswith(("/", ".", "~")) or name.count("/") > 1


def model_dir_problem(name: str) -> str | None:
    """Why model.name_or_path cannot be a model (a path-shaped name that does not exist), or None."""
    if looks_like_path(name) and not Path(name).expanduser().exists():
        return (
            f"model.name_or_path={name!r} does not exist. Fix the path (a directory with config.json), "
            "or give a hub id such as meta-llama/Llama-3.2-1B."
        )
    return None


def adapter_dir_problem(path: str) -> str | None:
    """Why model.adapter_path cannot be loaded as an adapter, or None."""
    adapter = resolve_local_path(path)
    if adapter is None or not (adapter / "adapter_config.json").is_file():
        return (
            f"model.adapter_path={path!r} holds no adapter_config.json: "
            "point it at a training run's adapter/ directory."
        )
    return None


def reward_model_dir(path: str) -> Path:
    """method.reward_model as a directory to load: an rm run dir means its adapter/ (or model/)."""
    for artefact in RESULT_DIRS:
        if (Path(path) / artefact).is_dir():
            return Path(path) / artefact
    return Path(path)


def adapter_base(directory: Path) -> str | None:
    """The base model a LoRA adapter directory was trained on, or None when it is not an adapter."""
    config = Path(directory) / "adapter_config.json"
    return (
        json.loads(config.read_text(encoding="utf-8"))["base_model_name_or_path"]
        if config.is_file()
        else None
    )


def is_reward_directory(directory: Path) -> bool:
    """A SEQ_CLS LoRA adapter, or a checkpoint whose architecture has a sequence-classification head."""
    adapter, config = directory / "adapter_config.json", directory / "config.json"
    if adapter.is_file():
        return json.loads(adapter.read_text(encoding="utf-8")).get("task_type") == "SEQ_CLS"
    architectures = (
        json.loads(config.read_text(encoding="utf-8")).get("architectures") if config.is_file() else None
    )
    return any(name.endswith("ForSequenceClassification") for name in architectures or [])


def reward_model_problem(path: str) -> str | None:
    """Why method.reward_model cannot be loaded as a reward model, or None."""
    directory = reward_model_dir(path)
    if not directory.is_dir():
        return f"method.reward_model={path!r} does not exist. Fix: give an rm run dir or a reward model directory."
    if is_reward_directory(directory):
        return None
    return (
        f"method.reward_model={path!r} is not a reward model ({directory} holds no sequence-classification "
        "model or SEQ_CLS adapter; an SFT adapter, say, cannot score replies). Fix: train one with "
        "method=lora_rm and give its run dir, or use method.reward_funcs."
    )
