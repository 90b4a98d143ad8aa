"""task=pipeline: several runs one after the other in one job, e.g. pre-train -> fine-tune -> evaluate.

Each step is the job's own config (its command line, sweep values included) with the step's overrides
added last, run in <run dir>/<step>/. A step starts from what the step before it trained: its model/
(full, freeze) becomes model.name_or_path, its adapter/ (LoRA) model.adapter_path. The last step's
objective is the job's, so a sweep compares whole pipelines (e.g. on a held-out exact match).
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from llmft.config.errors import ConfigError
from llmft.config.run_dir import ADAPTER_DIR, trained_result


def trained_model_overrides(step_dir: Path, carried: list[str]) -> list[str]:
    """The overrides that make the next step start from what this step left (unchanged when nothing)."""
    result = trained_result(step_dir)
    if result is None:
        return carried
    if result.name == ADAPTER_DIR:
        return [*carried, f"model.adapter_path={result}"]
    return [f"model.name_or_path={result}", "model.adapter_path=null"]


def job_overrides() -> list[str]:
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        raise ConfigError("task=pipeline composes its steps with Hydra: start it with python run.py.")
    return list(HydraConfig.get().overrides.task)


def run_pipeline(cfg: DictConfig, run_dir: Path) -> float | None:
    from hydra import compose

    from llmft.main import run

    overrides, carried, objective = job_overrides(), [], None
    for name, step in cfg.task.steps.items():
        print(f"== pipeline step {name}: {' '.join(step)}", flush=True)
        step_cfg = compose(config_name="config", overrides=[*overrides, *step, *carried])
        objective = run(step_cfg, run_dir / name)
        carried = trained_model_overrides(run_dir / name, carried)
    return objective
