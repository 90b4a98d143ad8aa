"""Validate the composed config, then hand it to the selected task."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from llmft.checks.validate import validate
from llmft.launch import run_task


def hydra_run_dir() -> Path:
    from hydra.core.hydra_config import HydraConfig

    return Path(HydraConfig.get().runtime.output_dir)


def check(cfg: DictConfig) -> None:
    """Every compose-time check (the config's, the data's and the benchmark files'); raises ConfigError."""
    validate(cfg)


def run(cfg: DictConfig, run_dir: Path | None = None) -> float | None:
    """The whole program after composition. run_dir defaults to Hydra's output dir for this job."""
    check(cfg)
    run_dir = Path(run_dir) if run_dir is not None else hydra_run_dir()
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_task(cfg, run_dir)  # here, or as torchrun workers / Slurm tasks per cfg.hardware
