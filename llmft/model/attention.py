"""Attention for padding-free batches: each packed sample attends only to itself, with no dense mask.

A padding-free batch is one row of concatenated samples with position_ids restarting at 0 and the
sample boundaries in `cu_seq_lens_q` (llmft.data.collate). transformers' own sdpa path turns that into
a dense [rows, 1, T, T] block-diagonal mask, which forces SDPA onto its slow masked kernels and costs
T^2 work per layer however short the samples are. Here each sample runs through SDPA's causal kernel
on its own slice instead: the same result, about sum(L_i^2) work instead of T^2.

On CUDA in bf16/fp16, where torch ships its flash-attention varlen kernel (torch >= 2.10), the whole
row goes through that one kernel instead, which reads the sample boundaries itself: no flash_attn
package to build, and no per-sample launches (a packed 8192-token row of short samples is a hundred
of them per layer).

Registered as attn_implementation "sdpa_varlen"; anything that is not a padding-free batch (padded
batches, generation with a cache, sliding-window layers) goes to transformers' sdpa unchanged.
"""

from __future__ import annotations

import inspect

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

VARLEN_SDPA = "sdpa_varlen"

try:
    from torch.nn.attention.varlen import varlen_attn
except ImportError:  # torch < 2.9
    varlen_attn = None
VARLEN_PARAMETERS = set(inspect.signature(varlen_attn).parameters) if varlen_attn else set()
if not {"scale", "window_size"} <= VARLEN_PARAMETERS:  # torch 2.9's first version took neither
    varlen_attn = None
# newer torch asks for grouped-query attention with a flag; older versions took fewer key heads as they were
GQA_FLAG = "enable_gqa" in VARLEN_PARAMETERS


def _is_padding_free_batch(
    module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, cu_seq_lens
) -> bool:
    return (
        cu_seq_lens is not None
        and query.shape[0] == 1
        and query.shape[2] == key.shape[2]  # no cache: every key belongs to this row's samples
        and getattr(module, "sliding_window", None) is None  # windows need the mask
    )


def varlen_sdpa_attention(module, query, key, value, attention_mask, cu_seq_lens_q=None, **kwargs):
    """query/key/value: [1, heads, T, head_dim]; returns [1, T, heads, head_dim] like transformers' sdpa."""
    if not _is_padding_free_batch(module, query, key, cu_seq_lens_q):
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    if _runs_flash_varlen(query, kwargs):
        return _flash_varlen(query, key, value, cu_seq_lens_q, kwargs), None
    lengths = cu_seq_lens_q.diff().tolist()
    dtype = query.dtype
    if query.device.type == "cpu" and dtype in (torch.bfloat16, torch.float16):
        # The CPU's flash-attention kernel is slower in bf16 than in fp32 on fine-tuning's short samples
        # (measured fwd+bwd: 2.4x at 100 tokens, even at 1000): compute attention in fp32.
        query, key, value = query.float(), key.float(), value.float()
    # split, not slicing: its backward is one concatenation instead of a zero-filled copy per sample
    outputs = [
        sdpa_attention_forward(module, q, k, v, None, **kwargs)[0]
        for q, k, v in zip(*(tensor.split(lengths, dim=2) for tensor in (query, key, value)), strict=True)
    ]
    return torch.cat(outputs, dim=1).to(dtype), None


def _runs_flash_varlen(query: torch.Tensor, kwargs: dict) -> bool:
    """torch's varlen kernel covers this call: CUDA, half precision, no attention dropout or softcap."""
    return (
        varlen_attn is not None
        and query.is_cuda
        and query.dtype in (torch.bfloat16, torch.float16)
        and query.shape[-1] <= 256  # the kernel's largest head
        and not kwargs.get("dropout")
        and not kwargs.get("softcap")
        and kwargs.get("max_length_q") is not None  # llmft's collators send it: no device sync to find it
    )


def _flash_varlen(query, key, value, cu_seq_lens, kwargs) -> torch.Tensor:
    """[1, heads, T, head_dim] in, [1, T, heads, head_dim] out, every sample causal within itself."""
    q, k, v = (tensor[0].transpose(0, 1) for tensor in (query, key, value))  # [T, heads, head_dim]
    grouped = {"enable_gqa": True} if GQA_FLAG and k.shape[1] != q.shape[1] else {}
    longest = kwargs["max_length_q"]
    causal = (-1, 0)  # (left, right) window: every earlier key of the sample, no later one
    output = varlen_attn(
        q,
        k,
        v,
        cu_seq_lens,
        cu_seq_lens,
        longest,
        longest,
        scale=kwargs.get("scaling"),
        window_size=causal,
        **grouped,
    )
    return output[None]


AttentionInterface.register(VARLEN_SDPA, varlen_sdpa_attention)
AttentionMaskInterface.register(VARLEN_SDPA, sdpa_mask)  # masks for the cases that fall back to sdpa
