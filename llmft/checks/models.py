"""Model and adapter directories (a path that does not exist is a mistake, never a fallback), and the
kernels a model is asked to train with."""

from __future__ import annotations

from omegaconf import DictConfig

from llmft.model.directories import adapter_dir_problem, model_dir_problem
from llmft.model.optional import missing_packages

# The stages transformers' Trainer trains, which patches Liger's kernels in; TRL's stages compute their
# losses from logits of their own.
LIGER_STAGES = ("sft", "pt")


def model_paths(cfg: DictConfig) -> list[str]:
    problems = [model_dir_problem(str(cfg.model.name_or_path))]
    if cfg.model.adapter_path:
        problems.append(adapter_dir_problem(str(cfg.model.adapter_path)))
    return [problem for problem in problems if problem]


def kernels(cfg: DictConfig) -> list[str]:
    if not (cfg.model.liger_kernel and cfg.task.name == "train"):
        return []
    problems = []
    if cfg.method.stage not in LIGER_STAGES:
        problems.append(
            f"model.liger_kernel=true applies to method.stage=sft and pt only; method.stage={cfg.method.stage} "
            "computes its loss in TRL: drop it."
        )
    if cfg.hardware.device == "cpu":
        problems.append(
            "model.liger_kernel=true runs Triton kernels on CUDA GPUs, but hardware.device=cpu: drop it."
        )
    if missing_packages(["liger_kernel"]):
        problems.append("model.liger_kernel=true needs the liger-kernel package: pip install liger-kernel")
    return problems
