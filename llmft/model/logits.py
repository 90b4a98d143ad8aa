"""Whether a causal LM can compute its logits, and its loss, only at chosen positions.

transformers' own decoder models take a boolean `logits_to_keep` mask (the LM head runs only there) and
a `shift_labels` target for their causal-LM loss. Remote-code models may not: they get full logits.
"""

from __future__ import annotations

import inspect
from typing import Any

from llmft.model.adapters import without_adapter


def takes_logits_mask(model: Any) -> bool:
    from transformers.loss.loss_utils import LOSS_MAPPING, ForCausalLMLoss

    base = without_adapter(model)
    return (
        type(base).__module__.startswith("transformers.")
        and "logits_to_keep" in inspect.signature(base.forward).parameters
        and LOSS_MAPPING.get(getattr(base, "loss_type", None)) is ForCausalLMLoss
    )
