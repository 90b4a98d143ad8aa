"""task=eval task.benchmark=lm_eval: lm-evaluation-harness scores the run's model, in this process.

The model is loaded as every llmft task loads it (model.adapter_path applied, quantization, dtype) and
handed to the harness as an object, so what is scored is exactly what was trained. task.lm_eval_tasks
holds the harness's task names, or YAML files defining tasks of your own (their directory is added to
the harness's search path). metrics.json gets every numeric result as lm_eval/<task>/<metric> (the
harness's 0-1 scale) and `accuracy`: the mean acc of the tasks, in percent like the other benchmarks;
lm_eval_results.json keeps the harness's whole report.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from llmft.config.errors import ConfigError
from llmft.config.paths import resolve_local_path
from llmft.config.run_dir import LM_EVAL_RESULTS_FILE, METRICS_FILE

log = logging.getLogger(__name__)


def task_names(entries: list[str]) -> tuple[list[str], list[str]]:
    """(task names, directories to search): a YAML entry stands for the task it defines."""
    import yaml

    names, include = [], []
    for entry in entries:
        if not entry.endswith((".yaml", ".yml")):
            names.append(entry)
            continue
        path = resolve_local_path(entry)
        if path is None:
            raise ConfigError(
                f"task.lm_eval_tasks: no file {entry!r}; give a task name or an existing YAML file."
            )
        names.append(yaml.safe_load(path.read_text(encoding="utf-8"))["task"])
        include.append(str(path.parent))
    return names, sorted(set(include))


def flat_metrics(results: dict[str, dict[str, Any]]) -> dict[str, float]:
    """lm_eval/<task>/<metric> for every number the harness reports ("acc,none" -> acc)."""
    metrics: dict[str, float] = {}
    for task, values in results.items():
        for key, value in values.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                metric, _, filtered = key.partition(",")
                name = metric if filtered in ("", "none") else f"{metric}_{filtered}"
                metrics[f"lm_eval/{task}/{name}"] = float(value)
    accuracies = [values["acc,none"] for values in results.values() if "acc,none" in values]
    if accuracies:
        metrics["accuracy"] = 100 * sum(accuracies) / len(accuracies)
    return metrics


def evaluate_with_harness(cfg: DictConfig, run_dir: Path) -> float | None:
    try:
        from lm_eval import simple_evaluate
        from lm_eval.models.huggingface import HFLM
        from lm_eval.tasks import TaskManager
    except ImportError as err:
        raise ConfigError(
            "task.benchmark=lm_eval needs lm-evaluation-harness: pip install -e .[eval]"
        ) from err
    from llmft.model.loader import chat_tokenizer, load_model

    task = cfg.task
    names, include = task_names(list(task.lm_eval_tasks))
    manager = TaskManager(include_path=include or None)
    if unknown := [name for name in names if name not in manager.all_tasks]:
        raise ConfigError(f"task.lm_eval_tasks: lm-eval knows no task {', '.join(unknown)}.")
    tokenizer = chat_tokenizer(cfg.model)
    model = load_model(cfg, tokenizer, for_training=False)
    report = simple_evaluate(
        model=HFLM(pretrained=model, tokenizer=tokenizer, batch_size=task.batch_size),
        tasks=names,
        num_fewshot=task.n_shot,
        task_manager=manager,
        log_samples=False,
        random_seed=cfg.seed,
    )
    (run_dir / LM_EVAL_RESULTS_FILE).write_text(
        json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8"
    )
    metrics = flat_metrics(report["results"])
    (run_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    for name, value in metrics.items():
        print(f"{name}: {value:.4f}")
    if task.objective not in metrics:
        log.warning(
            "task.objective=%r is not an lm-eval result (%s); returning None",
            task.objective,
            ", ".join(metrics),
        )
    return metrics.get(task.objective)
