"""What the board does with a finished training run: chat with it, evaluate, predict, export.

Each is the plain command a user would type, pointed at the run's result (adapter/ or model/), with the
run's own overrides so the same model preset, data and logger apply.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from llmft.config.run_dir import ADAPTER_DIR, HYDRA_DIR, trained_result

OVERRIDES_RECORD = Path(HYDRA_DIR) / "overrides.yaml"
TASKS = ("eval", "predict", "export")


def result_overrides(run_dir: Path) -> list[str]:
    """The overrides that load the run's result: its adapter on the base model, or its model."""
    result = trained_result(Path(run_dir).resolve())
    if result is None:
        raise FileNotFoundError(f"{run_dir} holds no trained result (adapter/ or model/): has it finished?")
    key = "model.adapter_path" if result.name == ADAPTER_DIR else "model.name_or_path"
    return [f"{key}={result}"]


def run_overrides(run_dir: Path) -> list[str]:
    """The overrides the run was started with (Hydra's record), but its task."""
    path = Path(run_dir) / OVERRIDES_RECORD
    recorded = [str(o) for o in OmegaConf.load(path)] if path.exists() else []
    return [o for o in recorded if not o.lstrip("+").startswith("task")]


def task_overrides(run_dir: Path, task: str, output_dir: Path) -> list[str]:
    """`task=<eval|predict|export>` on the run's result; its outputs (and an export) in output_dir."""
    if task not in TASKS:
        raise ValueError(f"task {task!r} is not one of: {', '.join(TASKS)}")
    overrides = [*run_overrides(run_dir), f"task={task}", *result_overrides(run_dir)]
    if task == "export":
        overrides.append(f"task.export_dir={Path(output_dir).resolve() / 'exported'}")
    return [*overrides, f"hydra.run.dir={Path(output_dir).resolve()}"]


def load_chat_engine(run_dir: Path):
    """The generation engine of task=chat on the run's result, in this process (llmft.infer)."""
    from llmft.config.compose import compose
    from llmft.infer.engine import build_engine
    from llmft.main import check

    cfg = compose([*run_overrides(run_dir), "task=chat", *result_overrides(run_dir)])
    check(cfg)
    return cfg, build_engine(cfg)
