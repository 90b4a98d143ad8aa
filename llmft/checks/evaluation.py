"""What task=eval needs: a benchmark it can find and a usable number of shots.

The hub benchmarks' file layouts are checked by llmft.evaluate.suites (run with these checks by
llmft.checks.validate), which knows their subjects and splits.
"""

from __future__ import annotations

from omegaconf import DictConfig

from llmft.evaluate.catalog import (
    BENCHMARK_EXTENSIONS,
    HUB_BENCHMARKS,
    LM_EVAL,
    benchmark_file,
    shipped_benchmarks,
)


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
