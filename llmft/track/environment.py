"""env.json: what produced a run (package versions, git commit and dirty flag, hardware)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from llmft.config.paths import PROJECT_ROOT
from llmft.config.run_dir import ENV_FILE
from llmft.track.secrets import redact_arguments

PACKAGES = (
    "llmft",
    "torch",
    "transformers",
    "tokenizers",
    "trl",
    "peft",
    "accelerate",
    "datasets",
    "bitsandbytes",
    "hydra-core",
    "omegaconf",
    "mlflow",
    "tensorboard",
)


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _hardware() -> dict:
    import torch

    info = {"platform": platform.platform(), "cpu_count": os.cpu_count(), "cuda": torch.cuda.is_available()}
    if torch.cuda.is_available():
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        info["cuda_version"] = torch.version.cuda
    return info


def collect_environment() -> dict:
    commit = _git("rev-parse", "HEAD")
    return {
        "python": sys.version.split()[0],
        "packages": {name: _version(name) for name in PACKAGES},
        "git": {"commit": commit, "dirty": bool(_git("status", "--porcelain")) if commit else None},
        "hardware": _hardware(),
        "command": redact_arguments(sys.argv),  # overrides may carry keys or tokens
    }


def write_environment(run_dir: Path) -> dict:
    env = collect_environment()
    (Path(run_dir) / ENV_FILE).write_text(json.dumps(env, indent=2))
    return env
