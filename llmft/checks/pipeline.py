"""What task=pipeline needs: steps to run."""

from __future__ import annotations

from omegaconf import DictConfig


def pipeline(cfg: DictConfig) -> list[str]:
    if cfg.task.name != "pipeline" or cfg.task.steps:
        return []
    return [
        "task=pipeline needs task.steps, {<step name>: [<overrides>, ...]}: e.g. +experiment=tiny_skills, "
        "or a recipe of your own (see experiments/experiment/tiny_skills.yaml)."
    ]
