"""LoRA linear layers as one autograd function: the same result as PEFT's, with less memory traffic.

PEFT computes a LoRA layer as `base(x) + lora_B(lora_A(x)) * scaling`: the adapter's [tokens, out]
product, its scaled copy and the sum are three new activation-sized tensors, and backward makes two
more (the scaled gradient, the adapter's input gradient, then their sum with the base one). On a CPU,
where such elementwise passes are bound by memory bandwidth, they cost about as much as the adapter's
matmuls themselves. Here the adapter's product is accumulated into the base output by the matmul
(`addmm_`, scaling folded into its alpha), and backward writes each gradient once. Only the plain case
takes this path (a float nn.Linear base that does not train, one active adapter, no dropout, DoRA or
other variant, no autocast, no ZeRO-3 partitioning); everything else runs PEFT's own forward unchanged.
"""

from __future__ import annotations

import types
from typing import Any

import torch
import torch.nn.functional as F


class _LoraLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, lora_a, lora_b, scaling: float):
        rows = x.reshape(-1, x.shape[-1])
        adapter_input = rows @ lora_a.t()  # [tokens, rank]
        output = F.linear(rows, weight, bias).addmm_(adapter_input, lora_b.t(), alpha=scaling)
        ctx.save_for_backward(rows, weight, lora_a, lora_b, adapter_input)
        ctx.scaling, ctx.input_shape = scaling, x.shape
        return output.view(*x.shape[:-1], output.shape[-1])

    @staticmethod
    def backward(ctx, grad_output):
        rows, weight, lora_a, lora_b, adapter_input = ctx.saved_tensors
        needs_x, _, _, needs_a, needs_b, _ = ctx.needs_input_grad
        grad = grad_output.reshape(-1, grad_output.shape[-1])
        grad_x = grad_a = grad_b = None
        if needs_b:
            grad_b = (grad.t() @ adapter_input).mul_(ctx.scaling)
        if needs_x or needs_a:
            grad_adapter_input = (grad @ lora_b).mul_(ctx.scaling)  # [tokens, rank]
        if needs_a:
            grad_a = grad_adapter_input.t() @ rows
        if needs_x:
            grad_x = (grad @ weight).addmm_(grad_adapter_input, lora_a).view(ctx.input_shape)
        return grad_x, None, None, grad_a, grad_b, None


def _fused_forward(layer, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    adapter = _plain_adapter(layer, x, args, kwargs)
    if adapter is None:
        return type(layer).forward(layer, x, *args, **kwargs)
    base = layer.base_layer
    return _LoraLinear.apply(
        x,
        base.weight,
        base.bias,
        layer.lora_A[adapter].weight,
        layer.lora_B[adapter].weight,
        layer.scaling[adapter],
    )


def _plain_adapter(layer, x: torch.Tensor, args: tuple, kwargs: dict) -> str | None:
    """The one active adapter when the fused path computes exactly what PEFT would, else None."""
    if args or kwargs or layer.disable_adapters or layer.merged:
        return None
    active = [name for name in layer.active_adapters if name in layer.lora_A]
    if len(active) != 1:
        return None
    adapter, base = active[0], layer.base_layer
    lora_a, lora_b = layer.lora_A[adapter], layer.lora_B[adapter]
    plain = (
        type(base) is torch.nn.Linear
        and not base.weight.requires_grad
        and (base.bias is None or not base.bias.requires_grad)
        and lora_b.bias is None
        and adapter not in layer.lora_variant  # DoRA and the other variants
        and isinstance(layer.lora_dropout[adapter], torch.nn.Identity)
        and not getattr(layer, "fan_in_fan_out", False)
        and x.dtype == base.weight.dtype == lora_a.weight.dtype == lora_b.weight.dtype
        and not torch.is_autocast_enabled(x.device.type)
        # DeepSpeed ZeRO-3 gathers a partitioned weight only when its own module runs
        and not any(hasattr(weight, "ds_id") for weight in (base.weight, lora_a.weight, lora_b.weight))
    )
    return adapter if plain else None


def fuse_lora_layers(model: torch.nn.Module) -> None:
    """Route every PEFT LoRA nn.Linear layer of `model` through the fused path."""
    from peft.tuners.lora.layer import Linear as LoraLinear

    for layer in model.modules():
        if type(layer) is LoraLinear:
            # a bound method, not a closure: a deep copy of the model (TRL's frozen reference) rebinds it
            layer.forward = types.MethodType(_fused_forward, layer)
