"""Which hub a model or dataset id downloads from: Hugging Face, or ModelScope.

LLaMA-Factory users switch to ModelScope with USE_MODELSCOPE_HUB=1; llmft honours the same variable
(`hub: auto`) and also takes the choice per model and per dataset (`model.hub=modelscope`).
"""

from __future__ import annotations

import os

HUBS = ("auto", "huggingface", "modelscope")
MODELSCOPE_INSTALL = "pip install modelscope (or pip install -e .[modelscope])"


def uses_modelscope(hub: str) -> bool:
    """hub=auto means ModelScope when USE_MODELSCOPE_HUB is set to 1/true, else Hugging Face."""
    if hub == "auto":
        return os.environ.get("USE_MODELSCOPE_HUB", "").strip().lower() in ("1", "true", "y", "yes")
    return hub == "modelscope"
