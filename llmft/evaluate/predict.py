"""task=predict: generate a reply for every row of the selected datasets and score it.

The prompt is the conversation before its last assistant turn (system prompt and tools
included); the label is that turn. Writes generated_predictions.jsonl (prompt, label,
prediction) and metrics.json (bleu-4, rouge-1/2/l, exact_match, throughput) in the run dir.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from tqdm import tqdm

from llmft.config.run_dir import METRICS_FILE, PREDICTIONS_FILE
from llmft.evaluate.metrics import generation_metrics
from llmft.infer.engine import SamplingParams, build_engine, require_backend
from llmft.track.tracking import tracked_run

log = logging.getLogger(__name__)


def _tools(row: dict[str, Any]) -> list[dict] | None:
    return json.loads(row["tools"]) if row.get("tools") else None


def predict(cfg: DictConfig, run_dir: Path) -> float | None:
    """task=predict, recorded by the selected logger (an MLflow run with the metrics and predictions)."""
    with tracked_run(cfg, run_dir):
        return _predict(cfg, run_dir)


def _predict(cfg: DictConfig, run_dir: Path) -> float | None:
    from llmft.data.canonical import prompt_and_reply
    from llmft.data.loader import load_canonical

    require_backend(cfg.generation.backend)
    rows = load_canonical(cfg.dataset, cfg.data, cfg.seed)
    samples = [(pair, _tools(row)) for row in rows if (pair := prompt_and_reply(row))[1] is not None]
    if not samples:
        raise ValueError(
            f"none of the {len(rows)} rows of dataset {'+'.join(cfg.dataset)} has a reply to compare with "
            "(plain-text rows have none): choose a conversation or instruction dataset."
        )
    if skipped := len(rows) - len(samples):
        log.warning("skipped %d of %d rows without a reference reply", skipped, len(rows))

    engine = build_engine(cfg)
    params = SamplingParams.from_config(cfg.generation).replace(seed=cfg.seed)  # sampling is reproducible too
    prompts = [engine.render_chat(messages, tools) for (messages, _), tools in samples]
    labels = [label for (_, label), _ in samples]
    predictions: list[str] = []
    started = time.perf_counter()
    with tqdm(total=len(samples), desc="Predicting", unit="sample") as progress:
        for start in range(0, len(samples), cfg.task.batch_size):
            batch = samples[start : start + cfg.task.batch_size]
            ids = [engine.encode_chat(messages, tools) for (messages, _), tools in batch]
            predictions += [replies[0].text for replies in engine.generate(ids, params)]
            progress.update(len(batch))
    runtime = time.perf_counter() - started

    with open(run_dir / PREDICTIONS_FILE, "w", encoding="utf-8") as out:
        for prompt, label, prediction in zip(prompts, labels, predictions, strict=True):
            out.write(
                json.dumps({"prompt": prompt, "label": label, "prediction": prediction}, ensure_ascii=False)
                + "\n"
            )
    metrics = {
        **generation_metrics(predictions, labels),
        "predict_samples": len(samples),
        "predict_runtime": runtime,
        "predict_samples_per_second": len(samples) / runtime if runtime else 0.0,
    }
    (run_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    print(f"Predictions: {run_dir / PREDICTIONS_FILE}")
    print(
        "  ".join(
            f"{name} {metrics[name]:.2f}"
            for name in ("bleu-4", "rouge-1", "rouge-2", "rouge-l", "exact_match")
        )
    )
    if cfg.task.objective not in metrics:
        log.warning(
            "task.objective=%r is not a predict metric (%s); returning None",
            cfg.task.objective,
            ", ".join(metrics),
        )
    return metrics.get(cfg.task.objective)
