"""What task=export needs: a destination, a source, and settings it can honour."""

from __future__ import annotations

import re

from omegaconf import DictConfig

from llmft.config.paths import resolve_local_path
from llmft.model.optional import PREQUANTIZED_BACKENDS, missing_packages

GPTQ_EXPORT_BITS = (2, 3, 4, 8)


SHARD_SIZE = re.compile(r"^\d+(\.\d+)?\s*(KB|MB|GB|KIB|MIB|GIB)$", re.IGNORECASE)


def export(cfg: DictConfig) -> list[str]:
    task, model, problems = cfg.task, cfg.model, []
    if task.name != "export":
        return problems
    if not task.export_dir:
        problems.append("task=export needs task.export_dir=<directory> for the merged model.")
    source = resolve_local_path(model.name_or_path)  # a missing adapter_path: models.model_paths says so
    if not model.adapter_path and (source is None or not source.is_dir()):
        problems.append(
            "task=export has nothing to export: set model.adapter_path=outputs/<run>/adapter (merged into the "
            "base model), or model.name_or_path=outputs/<run>/model (a fully fine-tuned model)."
        )
    if cfg.quantization.method != "none":
        problems.append(
            f"task=export merges into full-precision weights, not quantization={cfg.quantization.method}: use "
            "quantization=none (a QLoRA adapter merges into the 16-bit base); task.export_quantization_bit "
            "quantizes the export."
        )
    if not SHARD_SIZE.match(str(task.max_shard_size)):
        problems.append(f"task.max_shard_size={task.max_shard_size!r} is not a size such as 500MB or 2GB.")
    bits = task.export_quantization_bit
    if bits is not None and bits not in GPTQ_EXPORT_BITS:
        allowed = ", ".join(map(str, GPTQ_EXPORT_BITS))
        problems.append(f"task.export_quantization_bit={bits} is not one of: {allowed}.")
    elif bits is not None and (missing := missing_packages(PREQUANTIZED_BACKENDS["gptq"][0])):
        problems.append(
            f"task.export_quantization_bit={bits} quantizes with GPTQ, which needs {', '.join(missing)} and a "
            f"CUDA GPU: `{PREQUANTIZED_BACKENDS['gptq'][1]}` on a GPU machine, or drop task.export_quantization_bit."
        )
    return problems
