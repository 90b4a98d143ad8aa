"""Shared test setup: offline, an isolated cache, and Hydra composition without a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = ROOT / "conf"

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("LLMFT_CACHE", tempfile.mkdtemp(prefix="llmft-test-cache-"))


def compose(*overrides: str):
    """The config `python run.py <overrides>` would get, composed in-process (about 50 ms)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from llmft.config import register_schema

    register_schema()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=list(overrides))


def run_cli(
    *args: str, timeout: float = 600, env: dict | None = None, python_flags: tuple[str, ...] = ()
) -> subprocess.CompletedProcess:
    """`python run.py <args>` as a user would type it, from the project root."""
    return subprocess.run(
        [sys.executable, *python_flags, "run.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def composed():
    return compose
