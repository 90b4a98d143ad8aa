"""Importing what a config chose ("package.module:name" strings), without the garbage collector's rescans.

Importing torch, transformers and peft builds about half a million Python objects that live as long as
the process. Each full pass of the cyclic garbage collector walks all of them (0.3-0.5 s apiece on two
CPU cores), and it makes several while they are being built. So the collector pauses while a chosen
module imports for the first time, and gc.freeze() then moves everything alive into a generation it
never scans again, which also spares the full passes during training. What is frozen is never
collected: the imported libraries, which live until exit anyway, and whatever little garbage was
pending at that moment.
"""

from __future__ import annotations

import gc
import importlib
import sys
from typing import Any


def import_entry_point(spec: str) -> Any:
    """The object `spec` ("package.module:name") names, its module imported first if need be."""
    module_name, name = spec.split(":")
    if module_name not in sys.modules:
        collecting = gc.isenabled()
        gc.disable()
        try:
            importlib.import_module(module_name)
        finally:
            gc.freeze()
            if collecting:
                gc.enable()
    return getattr(sys.modules[module_name], name)
