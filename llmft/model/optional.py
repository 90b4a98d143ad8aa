"""Optional packages: which ones a setting needs, and keeping out of a run the ones it never uses.

Libraries import some installed packages on sight, whether the run needs them or not: PEFT imports
bitsandbytes (peft.helpers, and its LoRA layer dispatch), seconds of start-up and a warning in every run,
quantized or not; transformers imports scipy.optimize (0.3 s) for the losses of object-detection models;
TRL's trainers import wandb (about 0.5 s) wherever it is installed. For the length of a run that does
not use them, they are marked absent in sys.modules, so every library's `find_spec`/`import` sees them
as not installed; the mark is lifted afterwards.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import sys
import types
from collections.abc import Iterator, Sequence

from omegaconf import DictConfig

# Pre-quantized checkpoints: quantization.method -> (packages transformers needs to load them, how to install).
PREQUANTIZED_BACKENDS = {
    "gptq": (("optimum", "gptqmodel"), "pip install optimum gptqmodel"),
    "awq": (("gptqmodel",), "pip install gptqmodel"),
}


def missing_packages(packages: Sequence[str]) -> list[str]:
    """Those of `packages` that are not installed (asked without importing them)."""
    return [package for package in packages if importlib.util.find_spec(package) is None]


def unused_packages(cfg: DictConfig) -> list[str]:
    """The packages libraries would import in this run that it never uses."""
    unused = ["bitsandbytes"] if cfg.quantization.method == "none" else []
    if cfg.task.name == "train":  # no training stage uses scipy; export's quantizers and the board might
        unused.append("scipy")
    if not cfg.logger.wandb:
        unused.append("wandb")
    return unused


@contextlib.contextmanager
def packages_hidden(packages: Sequence[str]) -> Iterator[None]:
    """Hide `packages` for the duration (those not imported already)."""
    hidden = [package for package in packages if package not in sys.modules]
    for package in hidden:
        sys.modules[package] = None  # type: ignore[assignment]  # import -> ImportError, find_spec -> None
    try:
        yield
    finally:
        for package in hidden:
            if sys.modules.get(package, 0) is None:
                del sys.modules[package]
        if hidden:
            _forget_cached_probes()
            _bind_skipped_imports(hidden)


CACHED_PROBES = {  # answers to "is it installed?" that their libraries keep
    "peft.import_utils": ("is_bnb_available", "is_bnb_4bit_available"),
    "transformers.utils.import_utils": ("is_bitsandbytes_available", "is_scipy_available"),
}


# Modules that import a package at their own import only if it is installed (`if is_wandb_available():
# import wandb`), recognised by the probe they call: imported while it was hidden, they lack its name.
IMPORTED_IF_INSTALLED = {"wandb": "is_wandb_available"}


class _ImportedOnUse(types.ModuleType):
    """Stands in for a package a module skipped: imports the package when first read."""

    def __getattr__(self, attribute: str):
        return getattr(importlib.import_module(self.__name__), attribute)


def _bind_skipped_imports(hidden: Sequence[str]) -> None:
    """A later run in this process that uses the package must not meet a NameError in them (TRL's model
    card, written with every checkpoint, reads wandb.run once wandb is installed)."""
    for package in set(hidden) & set(IMPORTED_IF_INSTALLED):
        probe = IMPORTED_IF_INSTALLED[package]
        for module in list(sys.modules.values()):
            namespace = getattr(module, "__dict__", {})
            if probe in namespace and package not in namespace:
                setattr(module, package, _ImportedOnUse(package))


def _forget_cached_probes() -> None:
    """A later run in this process that uses them (a quantized one: tests, the board) must be told the truth."""
    for module_name, probes in CACHED_PROBES.items():
        module = sys.modules.get(module_name)
        for name in probes:
            probe = getattr(module, name, None)
            if hasattr(probe, "cache_clear"):
                probe.cache_clear()
