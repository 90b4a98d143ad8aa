"""The generation backends and the packages they need (no import of the backends themselves)."""

from __future__ import annotations

import importlib.util

BACKENDS = {
    "hf": "llmft.infer.hf_engine:HFEngine",
    "vllm": "llmft.infer.vllm_engine:VLLMEngine",
    "sglang": "llmft.infer.sglang_engine:SGLangEngine",
}
# generation.backend -> (the package it needs, how to install it); hf needs nothing extra.
BACKEND_PACKAGES = {"vllm": ("vllm", "pip install vllm"), "sglang": ("sglang", 'pip install "sglang[all]"')}


def backend_problem(backend: str) -> str | None:
    """Why generation.backend cannot run here (its package is missing), or None."""
    if backend not in BACKEND_PACKAGES or importlib.util.find_spec(BACKEND_PACKAGES[backend][0]) is not None:
        return None
    package, install = BACKEND_PACKAGES[backend]
    return (
        f"generation.backend={backend} needs the '{package}' package, which is not installed. "
        f"Install it with `{install}` (a CUDA GPU machine), or use generation.backend=hf."
    )
