"""Pre-quantized checkpoints (GPTQ, AWQ): the checkpoint carries its own quantization_config, so
loading only has to check that it says what the preset promises and that its backend is installed."""

from __future__ import annotations

from typing import Any

from llmft.model.optional import PREQUANTIZED_BACKENDS, missing_packages

PREQUANTIZED = tuple(PREQUANTIZED_BACKENDS)


def declared_quant_method(config: Any) -> str | None:
    """quant_method of a transformers config's quantization_config (a dict or a config object), if any."""
    declared = getattr(config, "quantization_config", None)
    if declared is None:
        return None
    method = (
        declared.get("quant_method")
        if isinstance(declared, dict)
        else getattr(declared, "quant_method", None)
    )
    return str(getattr(method, "value", method)).lower() if method is not None else None


def check_prequantized_checkpoint(
    method: str, model_path: str, revision: str | None, trust_remote_code: bool
) -> None:
    """Fail before the weights load when the backend is missing or the checkpoint is not `method`-quantized."""
    from transformers import AutoConfig

    packages, install = PREQUANTIZED_BACKENDS[method]
    if missing := missing_packages(packages):
        raise ImportError(f"quantization={method} needs {', '.join(missing)}: `{install}`")
    config = AutoConfig.from_pretrained(model_path, revision=revision, trust_remote_code=trust_remote_code)
    declared = declared_quant_method(config)
    if declared != method:
        raise ValueError(
            f"quantization={method} expects a {method.upper()} checkpoint, but the config.json of {model_path} "
            f"declares quant_method={declared}: choose the matching quantization preset "
            "(quantization=none for an unquantized model, bnb_4bit/bnb_8bit to quantize it while loading)."
        )
