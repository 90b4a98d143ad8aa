"""Validate the composed config, then hand it to the selected task."""

from __future__ import annotations

import importlib
from pathlib import Path

from omegaconf import DictConfig

from llmft.config.tasks import TASKS
from llmft.config.validate import validate
from llmft.data.sources import check_data_settings
from llmft.evaluate.suites import layout_problems


def hydra_run_dir() -> Path:
    from hydra.core.hydra_config import HydraConfig

    return Path(HydraConfig.get().runtime.output_dir)


def check(cfg: DictConfig) -> None:
    """Every compose-time check (the config's, the data's and the benchmark files'); raises ConfigError."""
    validate(cfg, data_problems=[*check_data_settings(cfg), *layout_problems(cfg.task)])


def run(cfg: DictConfig, run_dir: Path | None = None) -> float | None:
    """The whole program after composition. run_dir defaults to Hydra's output dir for this job."""
    check(cfg)
    run_dir = Path(run_dir) if run_dir is not None else hydra_run_dir()
    run_dir.mkdir(parents=True, exist_ok=True)
    module, function = TASKS[cfg.task.name].split(":")
    from llmft.model.optional import bitsandbytes_hidden

    with bitsandbytes_hidden(unless=cfg.quantization.method != "none"):  # seconds of start-up saved
        from llmft.launch import run_task  # here, or as torchrun workers / Slurm tasks per cfg.hardware

        return run_task(
            cfg, run_dir, lambda: getattr(importlib.import_module(module), function)(cfg, run_dir)
        )
