"""Model and adapter directories: a path that does not exist is a mistake, never a fallback."""

from __future__ import annotations

from omegaconf import DictConfig

from llmft.model.directories import adapter_dir_problem, model_dir_problem


def model_paths(cfg: DictConfig) -> list[str]:
    problems = [model_dir_problem(str(cfg.model.name_or_path))]
    if cfg.model.adapter_path:
        problems.append(adapter_dir_problem(str(cfg.model.adapter_path)))
    return [problem for problem in problems if problem]
