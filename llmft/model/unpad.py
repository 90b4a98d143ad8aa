"""Padding-free forward passes for padded batches: the decoder never computes a pad token.

TRL's preference trainers hand the model right-padded [rows, width] batches (chosen and rejected
concatenated), and short replies beside long ones leave much of such a batch padding. Wrapped here,
the decoder gathers the real tokens of every row into one row, with position_ids as the padded batch
would have them and the row boundaries as cu_seq_lens, so attention that reads them (llmft's
sdpa_varlen, flash-attention varlen) keeps each row to itself; its hidden states are then scattered
back into the padded layout, so whatever reads them (an LM head, a fused log-prob head, a reward
head) sees the batch it expects. The same result, without the work on padding.
"""

from __future__ import annotations

import functools
import types
from typing import Any

import torch
import torch.nn.functional as F

from llmft.model.adapters import without_adapter
from llmft.model.attention import VARLEN_SDPA

# attention implementations that keep the samples of a padding-free row apart
SAMPLE_ISOLATING_ATTENTION = (VARLEN_SDPA, "flash_attention_2")


def unpad_decoder(model: Any) -> bool:
    """Make `model`'s decoder run padded batches padding-free; False where its attention cannot."""
    base = without_adapter(model)
    if base.config._attn_implementation not in SAMPLE_ISOLATING_ATTENTION:
        return False
    decoder = base.get_decoder()
    # a bound method, not a closure: a deep copy of the model (TRL's frozen reference) rebinds it to the copy
    decoder.forward = types.MethodType(_padding_free_forward, decoder)
    return True


def _contiguous_rows(attention_mask: torch.Tensor) -> bool:
    """Every row's tokens form one run (left or right padding), so a row is one sample."""
    starts = (attention_mask.diff(dim=1, prepend=torch.zeros_like(attention_mask[:, :1])) == 1).sum(1)
    return bool((starts <= 1).all())


def _padding_free_forward(decoder, input_ids=None, attention_mask=None, position_ids=None, **kwargs):
    padded_forward = functools.partial(type(decoder).forward, decoder)
    plain = (
        input_ids is None
        or attention_mask is None
        or attention_mask.dim() != 2
        or attention_mask.all()  # nothing to save
        or kwargs.get("use_cache")
        or kwargs.get("past_key_values") is not None
        or kwargs.get("output_hidden_states")
        or kwargs.get("output_attentions")
        or kwargs.get("output_router_logits")
        or not _contiguous_rows(attention_mask)
    )
    if plain:
        return padded_forward(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, **kwargs
        )
    real = attention_mask.bool()
    if position_ids is None:  # what the padded forward would use: the column index
        position_ids = torch.arange(real.shape[1], device=real.device).expand_as(real)
    lengths = real.sum(1, dtype=torch.int32)
    bounds = F.pad(lengths.cumsum(0, dtype=torch.int32), (1, 0))
    longest = int(lengths.max())
    outputs = padded_forward(
        input_ids=input_ids[real][None],
        position_ids=position_ids[real][None],
        cu_seq_lens_q=bounds,
        cu_seq_lens_k=bounds,
        max_length_q=longest,
        max_length_k=longest,
        **kwargs,
    )
    hidden = outputs.last_hidden_state[0]
    outputs.last_hidden_state = hidden.new_zeros(*real.shape, hidden.shape[-1]).index_put((real,), hidden)
    return outputs
