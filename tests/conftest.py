"""Shared test setup: offline, an isolated cache, and Hydra composition without a subprocess."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = ROOT / "conf"

# One scratch dir per test session, removed at exit: the tiny-model and data caches, and the MLflow
# store of runs that keep the default logger (they must not write into the repo's outputs/mlflow.db).
SESSION_DIR = Path(tempfile.mkdtemp(prefix="llmft-tests-"))
atexit.register(shutil.rmtree, SESSION_DIR, ignore_errors=True)
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("LLMFT_CACHE", str(SESSION_DIR / "cache"))
os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{SESSION_DIR}/mlflow.db")


def compose(*overrides: str):
    """The config `python run.py <overrides>` would get, composed in-process (about 50 ms)."""
    from llmft.config.compose import compose as compose_overrides

    return compose_overrides(overrides)


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


def train_test_tokenizer(
    corpus: list[str],
    *,
    eos: str = "</s>",
    extra: tuple[str, ...] = (),
    vocab_size: int = 400,
    chat_template=None,
):
    """A small byte-level BPE with <s>/<pad>/eos (+ extra specials) for tests that need no model."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<pad>", "<s>", *extra, eos],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(corpus, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token=eos,
        pad_token="<pad>",
        extra_special_tokens=list(extra),
        chat_template=chat_template,
    )
