"""Model and adapter directories: a path that does not exist is a mistake, never a fallback."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from llmft.config.paths import resolve_local_path


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


def model_paths(cfg: DictConfig) -> list[str]:
    problems = [model_dir_problem(str(cfg.model.name_or_path))]
    if cfg.model.adapter_path:
        problems.append(adapter_dir_problem(str(cfg.model.adapter_path)))
    return [problem for problem in problems if problem]
