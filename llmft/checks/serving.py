"""Generation settings and serving limits that would only fail once a model is loaded."""

from __future__ import annotations

import os

from omegaconf import DictConfig

from llmft.infer.access import LOOPBACK_HOSTS, TOKEN_ENV
from llmft.infer.backends import backend_problem
from llmft.model.optional import missing_packages

GENERATING_TASKS = ("chat", "serve", "predict")


def generation(cfg: DictConfig) -> list[str]:
    """Sampling settings and serving limits that would fail (or hang) only once a model is loaded."""
    gen, task = cfg.generation, cfg.task
    if task.name in GENERATING_TASKS and (problem := backend_problem(gen.backend)):
        return [problem]
    if task.name in GENERATING_TASKS and gen.backend != "hf" and cfg.quantization.method != "none":
        return [
            f"generation.backend={gen.backend} does not apply quantization={cfg.quantization.method} (a preset "
            "of the hf backend): use quantization=none, or generation.backend=hf."
        ]
    checks = [
        (gen.temperature >= 0, f"generation.temperature={gen.temperature} must be >= 0 (0 = greedy)."),
        (0 < gen.top_p <= 1, f"generation.top_p={gen.top_p} must be in (0, 1]."),
        (gen.top_k >= 0, f"generation.top_k={gen.top_k} must be >= 0 (0 = no top-k filter)."),
        (gen.max_new_tokens > 0, f"generation.max_new_tokens={gen.max_new_tokens} must be > 0."),
        (gen.repetition_penalty > 0, f"generation.repetition_penalty={gen.repetition_penalty} must be > 0."),
        (all(gen.stop), "generation.stop holds an empty string (it would end every reply at once)."),
        (0 < task.port < 65536, f"task.port={task.port} must be a TCP port (1-65535)."),
        (task.batch_size > 0, f"task.batch_size={task.batch_size} must be > 0."),
        (task.max_tokens_limit > 0, f"task.max_tokens_limit={task.max_tokens_limit} must be > 0."),
        (task.max_request_bytes > 0, f"task.max_request_bytes={task.max_request_bytes} must be > 0."),
        (
            task.max_concurrent_requests > 0,
            f"task.max_concurrent_requests={task.max_concurrent_requests} must be > 0.",
        ),
        (
            task.max_waiting_requests >= 0,
            f"task.max_waiting_requests={task.max_waiting_requests} must be >= 0.",
        ),
    ]
    return [message for ok, message in checks if not ok]


def board(cfg: DictConfig) -> list[str]:
    """task=board: gradio installed; a sign-in token whenever other machines could reach it."""
    if cfg.task.name != "board":
        return []
    problems = []
    if missing_packages(["gradio"]):
        problems.append("task=board needs gradio: pip install -e .[board]")
    if cfg.task.host not in LOOPBACK_HOSTS and not (cfg.task.api_key or os.environ.get(TOKEN_ENV)):
        problems.append(
            f"task.host={cfg.task.host} lets other machines start runs on this one: set a sign-in token "
            f"({TOKEN_ENV}=<token> in the environment, or task.api_key), or keep task.host=127.0.0.1."
        )
    return problems
