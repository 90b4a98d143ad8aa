"""Validate the composed config, then hand it to the selected task."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from llmft.config.validate import validate


def hydra_run_dir() -> Path:
    from hydra.core.hydra_config import HydraConfig

    return Path(HydraConfig.get().runtime.output_dir)


def run(cfg: DictConfig, run_dir: Path | None = None) -> float | None:
    """The whole program after composition. run_dir defaults to Hydra's output dir for this job."""
    validate(cfg)
    run_dir = Path(run_dir) if run_dir is not None else hydra_run_dir()
    run_dir.mkdir(parents=True, exist_ok=True)
    if cfg.task.name == "train":
        from llmft.train import train  # heavy: torch, transformers, TRL

        return train(cfg, run_dir)
    raise AssertionError(f"task {cfg.task.name!r} passed validation but has no runner")
