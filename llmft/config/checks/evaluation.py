"""What task=eval needs: a benchmark it can find and a usable number of shots.

The hub benchmarks' file layouts are checked by llmft.evaluate.suites (called by llmft.main right
after this), which knows their subjects and splits.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from llmft.config.paths import PROJECT_ROOT, resolve_local_path

# name -> hub dataset; read in the hub repo's own layout, from the hub or from task.data_dir
HUB_BENCHMARKS = {"mmlu": "cais/mmlu", "ceval": "ceval/ceval-exam", "cmmlu": "haonan-li/cmmlu"}
LM_EVAL = "lm_eval"  # lm-evaluation-harness runs task.lm_eval_tasks
SHIPPED_BENCHMARKS = PROJECT_ROOT / "llmft" / "evaluate" / "benchmarks"  # <name>.jsonl, offline
BENCHMARK_EXTENSIONS = (".json", ".jsonl")


def shipped_benchmarks() -> list[str]:
    return sorted(path.stem for path in SHIPPED_BENCHMARKS.glob("*.jsonl"))


def benchmark_file(name: str) -> Path | None:
    """The local file behind task.benchmark (a shipped name or a path), or None for a hub benchmark."""
    if name in HUB_BENCHMARKS or name == LM_EVAL:
        return None
    if (shipped := SHIPPED_BENCHMARKS / f"{name}.jsonl").is_file():
        return shipped
    return resolve_local_path(name)


def evaluation(cfg: DictConfig) -> list[str]:
    task, problems = cfg.task, []
    if task.name != "eval":
        return problems
    name = task.benchmark
    if name == LM_EVAL:
        if not task.lm_eval_tasks:
            problems.append(
                "task.benchmark=lm_eval needs task.lm_eval_tasks: the harness's task names, e.g. "
                "task.lm_eval_tasks=[arc_easy], or YAML files defining your own."
            )
    elif name not in HUB_BENCHMARKS:
        path = benchmark_file(name)
        if path is None or not path.is_file():
            known = ", ".join([*HUB_BENCHMARKS, LM_EVAL, *shipped_benchmarks()])
            problems.append(
                f"task.benchmark={name!r} is neither a known benchmark ({known}) nor an existing file: "
                "name one, or give the path of a json/jsonl file (columns question, subject, choices, answer)."
            )
        elif path.suffix not in BENCHMARK_EXTENSIONS:
            problems.append(f"task.benchmark={name!r} must be a .json or .jsonl file, not {path.suffix!r}.")
    if task.n_shot < 0:
        problems.append(f"task.n_shot={task.n_shot} must be >= 0 (0 = zero-shot).")
    return problems
