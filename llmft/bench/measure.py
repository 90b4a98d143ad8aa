"""What the benchmark measures: the machine's matmul rate, one training run as a user starts it, and
the data preprocessing on its own."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from llmft.config.imports import import_entry_point
from llmft.config.paths import PROJECT_ROOT
from llmft.model.optional import packages_hidden, unused_packages
from llmft.track.run_files import loss_series, read_log, read_metrics


def matmul_rate(dtype: torch.dtype, device: str, size: int | None = None, windows: int = 5) -> float:
    """FLOP/s of a size x size matmul, the ceiling the training runs are compared with: the best of several
    short windows, so that a moment of contention on a shared machine does not lower it (and flatter MFU).
    A GPU reaches its rate only on large products (an H200's bf16: 8192 for ~790 TFLOP/s)."""
    size = size or (8192 if device == "cuda" else 2048)
    a = torch.randn(size, size, dtype=dtype, device=device)
    b = torch.randn(size, size, dtype=dtype, device=device)
    for _ in range(3):  # warm-up: thread pools, kernels, clocks
        a @ b
    best = 0.0
    for _ in range(windows):
        count, started = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - started) < 0.3:
            a @ b
            _finish_gpu_work()
            count += 1
        best = max(best, 2 * size**3 * count / elapsed)
    return best


def run_training(overrides: list[str], run_dir: Path, env: dict[str, str]) -> dict[str, Any]:
    """`python run.py <overrides>` in a fresh process: its figures, peak RSS and time to first step."""
    run_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    with (run_dir / "bench_output.log").open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "run.py", *overrides, f"hydra.run.dir={run_dir}"],
            cwd=PROJECT_ROOT,
            env={**os.environ, **env},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        _, status, usage = os.wait4(process.pid, 0)  # wait4: this child's own peak RSS
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        tail = (run_dir / "bench_output.log").read_text()[-3000:]
        raise RuntimeError(f"benchmark run failed: python run.py {' '.join(overrides)}\n{tail}")
    records = read_log(run_dir)
    metrics = read_metrics(run_dir)
    _, losses = loss_series(records)
    first_step = next(record for record in records if record["step"] == 1 and "loss" in record)
    return {
        "tokens_per_second": metrics["train_tokens_per_second"],
        "train_tokens": metrics["train_tokens"],
        "train_runtime_s": round(metrics["train_runtime"], 2),
        "first_step_s": round(first_step["time"] - started, 2),
        "final_loss": round(losses[-1], 4),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        **({"peak_gpu_memory_mb": metrics["peak_gpu_memory_mb"]} if "peak_gpu_memory_mb" in metrics else {}),
    }


def preprocessing_rate(cfg: Any, stage: str, tokenizer: Any) -> dict[str, float]:
    """Rows per second of building the training data, cold (empty cache) and cached."""
    from llmft.data import build_dpo_datasets, build_sft_datasets

    build = build_dpo_datasets if stage == "dpo" else build_sft_datasets
    rates = {}
    for state in ("cold", "cached"):
        started = time.perf_counter()
        splits = [split for split in build(cfg, tokenizer) if split is not None]
        rows = sum(_samples(split) for split in splits)
        rates[f"preprocess_rows_per_s_{state}"] = round(rows / (time.perf_counter() - started), 1)
    return rates


def _samples(split: Any) -> int:
    """Samples in a split; a packed row holds several (its seq_lengths)."""
    if "seq_lengths" in split.column_names:
        return sum(len(lengths) for lengths in split["seq_lengths"])
    return len(split)


def _finish_gpu_work() -> None:
    """Wait for queued GPU kernels, so that a timer reads their time and not only their launch."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def write_json_line(path: Path, record: dict[str, Any]) -> None:
    with path.open("a") as stream:
        stream.write(json.dumps(record) + "\n")


def step_overhead_ms(cfg: Any, run_dir: Path) -> dict[str, float]:
    """Median time per training step of the Trainer, against the forward + backward of the same batches
    alone: what the training loop costs beyond the model (optimizer, clipping, logging, batching)."""
    with packages_hidden(unused_packages(cfg)):  # imported and trained as `python run.py` would
        return _step_overhead_ms(cfg, run_dir, import_entry_point("llmft.train.sft:build_sft_trainer"))


def _step_overhead_ms(cfg: Any, run_dir: Path, build_sft_trainer: Any) -> dict[str, float]:
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.times: list[float] = []

        def on_step_begin(self, args, state, control, **kwargs):
            _finish_gpu_work()
            self.started = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            _finish_gpu_work()
            self.times.append(time.perf_counter() - self.started)

    timer = StepTimer()
    trainer = build_sft_trainer(cfg, run_dir, callbacks=[timer])
    trainer.train()
    model = trainer.model.train()
    passes = []
    for batch in list(trainer.get_train_dataloader())[: len(timer.times)]:
        _finish_gpu_work()
        started = time.perf_counter()
        model(**trainer._prepare_inputs(batch)).loss.backward()
        _finish_gpu_work()
        passes.append(time.perf_counter() - started)
    model.zero_grad()
    skip = min(2, len(timer.times) - 1)  # the first steps warm up allocators and caches
    step, forward_backward = statistics.median(timer.times[skip:]), statistics.median(passes[skip:])
    return {
        "step_ms": round(1000 * step, 2),
        "forward_backward_ms": round(1000 * forward_backward, 2),
        "step_overhead_ms": round(1000 * (step - forward_backward), 2),
    }
