"""Optional packages: which ones a setting needs, and keeping them out of runs that do not use them.

PEFT imports bitsandbytes as soon as it is installed (peft.helpers, and its LoRA layer dispatch), which
costs seconds of start-up and prints a warning in every run, quantized or not. While a run that
quantizes nothing trains, bitsandbytes is marked absent in sys.modules, so every library's
`find_spec`/`import` sees it as not installed; the mark is lifted afterwards.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from collections.abc import Iterator, Sequence

PACKAGE = "bitsandbytes"
# Pre-quantized checkpoints: quantization.method -> (packages transformers needs to load them, how to install).
PREQUANTIZED_BACKENDS = {
    "gptq": (("optimum", "gptqmodel"), "pip install optimum gptqmodel"),
    "awq": (("gptqmodel",), "pip install gptqmodel"),
}


def missing_packages(packages: Sequence[str]) -> list[str]:
    """Those of `packages` that are not installed (asked without importing them)."""
    return [package for package in packages if importlib.util.find_spec(package) is None]


@contextlib.contextmanager
def bitsandbytes_hidden(unless: bool) -> Iterator[None]:
    """Hide bitsandbytes for the duration (unless `unless`, or it is imported already)."""
    if unless or PACKAGE in sys.modules:
        yield
        return
    sys.modules[PACKAGE] = None  # type: ignore[assignment]  # import -> ImportError, find_spec -> None
    try:
        yield
    finally:
        if sys.modules.get(PACKAGE, 0) is None:
            del sys.modules[PACKAGE]
        _forget_cached_probes()


CACHED_PROBES = {  # answers to "is bitsandbytes available?" that their libraries keep
    "peft.import_utils": ("is_bnb_available", "is_bnb_4bit_available"),
    "transformers.utils.import_utils": ("is_bitsandbytes_available",),
}


def _forget_cached_probes() -> None:
    """A later quantized run in this process (tests, the board) must be told the truth again."""
    for module_name, probes in CACHED_PROBES.items():
        module = sys.modules.get(module_name)
        for name in probes:
            probe = getattr(module, name, None)
            if hasattr(probe, "cache_clear"):
                probe.cache_clear()
