"""Which benchmarks task=eval knows: the hub ones, lm-evaluation-harness, and those shipped with llmft.

Names and files only (no torch): the compose-time checks and the benchmark runner read them here.
"""

from __future__ import annotations

from pathlib import Path

from llmft.config.paths import resolve_local_path

# name -> hub dataset; read in the hub repo's own layout, from the hub or from task.data_dir
HUB_BENCHMARKS = {"mmlu": "cais/mmlu", "ceval": "ceval/ceval-exam", "cmmlu": "haonan-li/cmmlu"}
LM_EVAL = "lm_eval"  # lm-evaluation-harness runs task.lm_eval_tasks
SHIPPED_BENCHMARKS = Path(__file__).resolve().parent / "benchmarks"  # <name>.jsonl, offline
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
