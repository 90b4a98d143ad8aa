"""The speed benchmark: figures, not a test.

    python -m llmft.bench                       # the ~30M model: sft, sft_packed, dpo, full_sft
                                                # (fp32 on CPU; bf16 on a GPU, plus a Llama-3-8B-shaped LoRA)
    python -m llmft.bench --precision bf16      # bf16 autocast on a CPU with native bf16
    python -m llmft.bench --repeats 3 --workloads sft,sft_packed
    python -m llmft.bench --workloads sft_packed --set model.liger_kernel=true   # a feature's effect
    python -m llmft.bench --smoke               # the tiny model, a few steps: checks the benchmark itself

Each workload trains twice per repeat, as a user would start it (`python run.py ...` in a new process):
once with an empty tokenisation cache (cold) and once with it warm. It reports, per workload, the
medians over those runs of non-padding tokens/s and model FLOPs utilisation (MFU: each run against the
mean of the matmul rates this process measured just before and just after it, so that a shared machine
slowing down or speeding up during the run moves the ceiling too; the FLOP formula is in
llmft.bench.workloads), the time from process start to the first optimizer step (cold and warm),
preprocessing rows/s (cold and cached), peak RSS and the final loss. Results: one JSON line per run
and per workload summary in <out>/bench.jsonl, and a table on the console.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path
from typing import Any

import torch

from llmft.bench.assets import ensure_assets, ensure_llama3_8b_shaped
from llmft.bench.measure import (
    matmul_rate,
    preprocessing_rate,
    run_training,
    step_overhead_ms,
    write_json_line,
)
from llmft.bench.workloads import DEFAULT_WORKLOADS, WORKLOADS, ModelShape, Workload
from llmft.config.compose import compose

LORA_RANK = 8
SETTINGS = (  # the benchmark's fixed training settings (a workload's overrides come after them)
    "logger=none",
    "seed=42",
    "data.cutoff_len=512",
    "method.per_device_train_batch_size=4",
    "method.gradient_accumulation_steps=1",
    f"method.lora_rank={LORA_RANK}",
    f"method.lora_alpha={2 * LORA_RANK}",
    "method.lora_dropout=0.0",
    "method.lora_target=all",
    "method.learning_rate=1e-4",
    "method.lr_scheduler_type=linear",
    "method.warmup_steps=0",
    "method.max_grad_norm=1.0",
    "method.logging_steps=5",
    "method.save_steps=100000",
)


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m llmft.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--workloads",
        help=f"of: {', '.join(WORKLOADS)} (default: {', '.join(DEFAULT_WORKLOADS)}, and on a GPU the 8B one)",
    )
    parser.add_argument("--precision", choices=("fp32", "bf16"), help="default: bf16 on a GPU, fp32 on a CPU")
    parser.add_argument(
        "--set",
        dest="extra",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a run.py override added to every workload (repeatable)",
    )
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=1, help="rounds of cold + warm runs per workload")
    parser.add_argument("--smoke", action="store_true", help="the tiny model, 3 steps, 64 rows")
    parser.add_argument("--out", type=Path, default=None, help="default: a new folder under outputs/bench")
    arguments = parser.parse_args()
    gpu = _device() == "cuda"
    arguments.precision = arguments.precision or ("bf16" if gpu else "fp32")
    chosen = (
        arguments.workloads.split(",")
        if arguments.workloads
        else [
            *DEFAULT_WORKLOADS,
            *(
                name
                for name, workload in WORKLOADS.items()
                if workload.gpu_only and gpu and not arguments.smoke
            ),
        ]
    )
    if unknown := set(chosen) - set(WORKLOADS):
        parser.error(f"unknown workload(s) {sorted(unknown)}; choose from {', '.join(WORKLOADS)}")
    if not gpu and any(WORKLOADS[name].gpu_only for name in chosen):
        parser.error("the Llama-3-8B-shaped workload needs a CUDA GPU")
    arguments.workloads = chosen
    return arguments


def _device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def _overrides(workload: Workload, assets, arguments, cache_dir: Path) -> list[str]:
    if arguments.smoke:
        model = ["model=tiny"]
    else:
        model_dir = ensure_llama3_8b_shaped(assets.model_dir) if workload.gpu_only else assets.model_dir
        model = ["model=tiny", f"model.name_or_path={model_dir}"]
    if workload.stage == "dpo":
        data = ["dataset=demo_dpo", f"dataset.demo_dpo.path={assets.preference_file}"]
    else:
        data = ["dataset=demo_sft", f"dataset.demo_sft.path={assets.sft_file}"]
    hardware = [f"hardware.device={_device()}", f"hardware.precision={arguments.precision}"]
    steps = 3 if arguments.smoke else arguments.steps
    smoke = ["data.max_samples=64"] if arguments.smoke else []
    return [
        *model,
        *data,
        *SETTINGS,
        *workload.overrides,
        *hardware,
        *smoke,
        *arguments.extra,
        f"method.max_steps={steps}",
        f"data.cache_dir={cache_dir}",
    ]


def _mean_context(cfg: Any, stage: str, tokenizer: Any) -> float:
    """Token-weighted mean causal context of the training samples (each attends only to itself)."""
    from llmft.data import build_dpo_datasets, build_sft_datasets

    if stage == "dpo":  # the prompt with the chosen reply, and with the rejected one
        train, _ = build_dpo_datasets(cfg, tokenizer)
        lengths = [
            len(row["prompt_ids"]) + len(row[reply])
            for row in train
            for reply in ("chosen_ids", "rejected_ids")
        ]
    else:
        train, _ = build_sft_datasets(cfg, tokenizer)
        lengths = [length for row in train for length in (row.get("seq_lengths") or [len(row["input_ids"])])]
    return (sum(length * length for length in lengths) / sum(lengths) + 1) / 2


def benchmark(workload: Workload, assets, arguments, out: Path) -> dict[str, Any]:
    from llmft.model.loader import chat_tokenizer

    device, dtype = _device(), torch.bfloat16 if arguments.precision == "bf16" else torch.float32
    cfg = compose(_overrides(workload, assets, arguments, out / "cache" / f"{workload.name}-preprocess"))
    tokenizer = chat_tokenizer(cfg.model)
    preprocessing = preprocessing_rate(cfg, workload.stage, tokenizer)  # first: it needs the cache empty
    shape = ModelShape.from_dir(_model_dir(cfg))
    flops = workload.flops_per_token(shape, _mean_context(cfg, workload.stage, tokenizer))
    runs = []
    for repeat in range(arguments.repeats):
        cache_dir = out / "cache" / f"{workload.name}-{repeat}"
        overrides = _overrides(workload, assets, arguments, cache_dir)
        for state in ("cold", "warm"):
            run = {"workload": workload.name, "repeat": repeat, "cache": state}
            # the ceiling just before and just after the run: the machine's rate while it trained
            before = matmul_rate(dtype, device)
            run.update(run_training(overrides, out / "runs" / f"{workload.name}-{repeat}-{state}", {}))
            rate = (before + matmul_rate(dtype, device)) / 2
            run.update(
                matmul_gflops=round(rate / 1e9, 1), mfu=round(run["tokens_per_second"] * flops / rate, 4)
            )
            write_json_line(out / "bench.jsonl", run)
            runs.append(run)
    summary = {
        "workload": workload.name,
        "precision": arguments.precision,
        "device": device,
        "extra_overrides": arguments.extra,
        "tokens_per_second": _median(runs, "tokens_per_second", 1),
        "mfu": _median(runs, "mfu", 4),
        "flops_per_token": round(flops),
        "matmul_gflops": _median(runs, "matmul_gflops", 1),
        "first_step_s_cold": _median(runs, "first_step_s", 2, "cold"),
        "first_step_s_warm": _median(runs, "first_step_s", 2, "warm"),
        **preprocessing,
        "peak_rss_mb": max(run["peak_rss_mb"] for run in runs),
        "final_loss": _median(runs, "final_loss", 4),
        "runs": len(runs),
    }
    if device == "cuda":
        summary["peak_gpu_memory_mb"] = max(run["peak_gpu_memory_mb"] for run in runs)
    write_json_line(out / "bench.jsonl", {"summary": True, **summary})
    return summary


def _median(runs: list[dict[str, Any]], figure: str, digits: int, cache: str | None = None) -> float:
    """A figure's median over the runs (or those of one cache state), rounded as the runs report it."""
    return round(statistics.median(run[figure] for run in runs if cache in (None, run["cache"])), digits)


def tiny_step_overhead(arguments, out: Path) -> dict[str, float]:
    """The training loop's own cost per step, on the tiny default model where it shows most."""
    steps = 6 if arguments.smoke else arguments.steps
    overrides = ["model=tiny", "dataset=demo_sft", *SETTINGS, f"method.max_steps={steps}"]
    device = [f"hardware.device={_device()}", f"hardware.precision={arguments.precision}"]
    cfg = compose([*overrides, *device, f"data.cache_dir={out / 'cache' / 'tiny'}"])
    summary = {
        "workload": "tiny_step_overhead",
        "summary": True,
        **step_overhead_ms(cfg, out / "runs" / "tiny"),
    }
    write_json_line(out / "bench.jsonl", summary)
    return summary


def _model_dir(cfg: Any) -> Path:
    from llmft.model.loader import resolve_model_path

    return Path(resolve_model_path(cfg.model))


COLUMNS = (
    ("workload", "{}"),
    ("tokens_per_second", "{:.0f}"),
    ("mfu", "{:.1%}"),
    ("matmul_gflops", "{:.0f}"),
    ("first_step_s_cold", "{:.1f}"),
    ("first_step_s_warm", "{:.1f}"),
    ("preprocess_rows_per_s_cold", "{:.0f}"),
    ("preprocess_rows_per_s_cached", "{:.0f}"),
    ("peak_rss_mb", "{:.0f}"),
    ("final_loss", "{:.4f}"),
)


def table(summaries: list[dict[str, Any]]) -> str:
    header = "| " + " | ".join(name for name, _ in COLUMNS) + " |"
    rows = [
        "| " + " | ".join(form.format(summary[name]) for name, form in COLUMNS) + " |"
        for summary in summaries
    ]
    return "\n".join([header, "|" + "---|" * len(COLUMNS), *rows])


def main() -> None:
    arguments = _arguments()
    if arguments.out is None:
        Path("outputs").mkdir(exist_ok=True)
    out = arguments.out or Path(tempfile.mkdtemp(prefix="bench-", dir=Path("outputs").resolve()))
    out.mkdir(parents=True, exist_ok=True)
    assets = ensure_assets()
    summaries = []
    for name in arguments.workloads:
        summaries.append(benchmark(WORKLOADS[name], assets, arguments, out))
        print(f"{name}: {summaries[-1]['tokens_per_second']:.0f} tokens/s", flush=True)
    print(
        f"\n{arguments.precision} on {summaries[0]['device']}; MFU against matmul_gflops, measured around each run"
    )
    print(table(summaries))
    overhead = tiny_step_overhead(arguments, out)
    print(
        f"\ntiny model: {overhead['step_ms']} ms per step, {overhead['forward_backward_ms']} ms of it forward "
        f"+ backward: {overhead['step_overhead_ms']} ms of training-loop overhead"
    )
    print(f"\nJSON lines: {out / 'bench.jsonl'}")


if __name__ == "__main__":
    main()
