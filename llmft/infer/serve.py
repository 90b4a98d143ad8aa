"""task=serve: the OpenAI-compatible API and the web chat page on task.host:task.port."""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

from omegaconf import DictConfig

from llmft.config.errors import ConfigError
from llmft.infer.access import LOOPBACK_HOSTS, TOKEN_ENV
from llmft.infer.engine import SamplingParams, build_engine, require_backend, served_model_name

log = logging.getLogger(__name__)


def api_key(cfg: DictConfig) -> str | None:
    """task.api_key, else the LLMFT_API_KEY environment variable (kept out of saved configs)."""
    return cfg.task.api_key or os.environ.get(TOKEN_ENV) or None


def check_port(host: str, port: int) -> None:
    """Fail before the model loads when task.host:task.port cannot be served (taken, privileged, no such host)."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(
                socket.SOL_SOCKET, socket.SO_REUSEADDR, 1
            )  # as uvicorn: TIME_WAIT is no obstacle
            probe.bind((host, port))
    except OSError as exc:
        raise ConfigError(
            f"task.port={port} on task.host={host} cannot be served: {exc.strerror or exc}. Fix: pick a free "
            "port (task.port=8001, say), stop the program holding it, or use a port above 1023."
        ) from None


def serve(cfg: DictConfig, run_dir: Path) -> None:
    import uvicorn

    from llmft.infer.api import ServerSettings, create_app
    from llmft.model.loader import is_reward_model
    from llmft.model.reward import RewardScorer

    check_port(cfg.task.host, cfg.task.port)
    require_backend(cfg.generation.backend)
    settings = ServerSettings(
        defaults=SamplingParams.from_config(cfg.generation),
        api_key=api_key(cfg),
        max_request_bytes=cfg.task.max_request_bytes,
        max_tokens_limit=cfg.task.max_tokens_limit,
        max_concurrent_requests=cfg.task.max_concurrent_requests,
        max_waiting_requests=cfg.task.max_waiting_requests,
    )
    if is_reward_model(cfg.model):
        if cfg.quantization.method != "none":
            raise ValueError("reward models are served unquantized: use quantization=none with task=serve")
        app = create_app(settings, scorer=RewardScorer.load(cfg, served_model_name(cfg)))
    else:
        app = create_app(settings, engine=build_engine(cfg))
    if settings.api_key is None and cfg.task.host not in LOOPBACK_HOSTS:
        log.warning(
            "serving on %s without an API key: anyone who can reach it can use it "
            "(set task.api_key or LLMFT_API_KEY)",
            cfg.task.host,
        )
    print(
        f"Serving on http://{cfg.task.host}:{cfg.task.port}  (web chat at /, OpenAI API at /v1)", flush=True
    )
    uvicorn.run(app, host=cfg.task.host, port=cfg.task.port, log_level="warning")
