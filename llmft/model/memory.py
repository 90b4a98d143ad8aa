"""Training memory per device, estimated from the model's shape (config.json, or a table for the shipped
hub presets) and the method, quantization and batch settings; no weights are loaded.

What is modelled, in the dtypes this project's code actually uses:
- weights: the model dtype; bitsandbytes 4/8-bit linear layers at their packed size, while
  prepare_model_for_kbit_training keeps every other weight (embeddings, head, norms) in fp32;
- trainable parameters: LoRA adapters in fp32 (PEFT upcasts them), or the model's own weights (freeze,
  full); gradients in the trainable dtype; AdamW's two states in the trainable dtype (8-bit Adam: 2 bytes);
- activations of one micro-batch of per_device_train_batch_size x data.cutoff_len tokens (an upper
  bound: batches are padded to their longest row) with memory-efficient attention, all layers, or only
  their inputs plus one layer under gradient checkpointing; plus the fp32 logits and their gradient.
Not modelled: CUDA context and allocator slack (~1 GB on a GPU), DeepSpeed/FSDP sharding (divide the
states by the GPU count), DoRA's transient weight copies, eager attention's seq x seq scores.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

GB = 1e9

# Bits per parameter of a quantized linear weight, including its quantization constants
# (blocks of 64 with an fp32 absmax; double quantization stores those in 8 bits).
BNB_4BIT_BITS = {True: 4.127, False: 4.5}
BNB_8BIT_BITS = 8.0
PREQUANTIZED_DEFAULT_BITS = 4  # gptq/awq when the config cannot be read; group scales add ~0.25 bit
EIGHT_BIT_OPTIMIZERS = ("adamw_bnb_8bit", "adamw_8bit", "paged_adamw_8bit", "adam8bit")
STATELESS_OPTIMIZERS = ("sgd",)


@dataclass(frozen=True)
class ModelShape:
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    tied_embeddings: bool

    def linear_modules(self) -> dict[str, tuple[int, int]]:
        """(in, out) features of each linear module of one decoder layer, by leaf name; the fused names
        (Phi-3) are listed too, for LoRA targets, but `layer_params` counts the unfused ones."""
        h, i = self.hidden_size, self.intermediate_size
        q, kv = self.num_heads * self.head_dim, self.num_kv_heads * self.head_dim
        return {
            "q_proj": (h, q),
            "k_proj": (h, kv),
            "v_proj": (h, kv),
            "o_proj": (q, h),
            "gate_proj": (h, i),
            "up_proj": (h, i),
            "down_proj": (i, h),
            "qkv_proj": (h, q + 2 * kv),
            "gate_up_proj": (h, 2 * i),
        }

    @property
    def layer_linear_params(self) -> int:
        unfused = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
        return sum(i * o for name, (i, o) in self.linear_modules().items() if name in unfused)

    @property
    def layer_params(self) -> int:
        return self.layer_linear_params + 2 * self.hidden_size  # two norms

    @property
    def embedding_params(self) -> int:
        return self.vocab_size * self.hidden_size

    @property
    def head_params(self) -> int:
        return 0 if self.tied_embeddings else self.embedding_params

    @property
    def total_params(self) -> int:
        return (
            self.num_layers * self.layer_params + self.embedding_params + self.head_params + self.hidden_size
        )


def _shape(h: int, i: int, layers: int, heads: int, kv: int, vocab: int, tied: bool, head_dim: int = 0):
    return ModelShape(h, i, layers, heads, kv, head_dim or h // heads, vocab, tied)


# The shipped hub presets (conf/model/*.yaml), from their published config.json files: estimates must work
# before anything is downloaded (gated models, offline machines).
KNOWN_SHAPES: dict[str, ModelShape] = {
    "meta-llama/Meta-Llama-3-8B-Instruct": _shape(4096, 14336, 32, 32, 8, 128256, False),
    "meta-llama/Llama-3.2-1B-Instruct": _shape(2048, 8192, 16, 32, 8, 128256, True),
    "meta-llama/Llama-3.2-3B-Instruct": _shape(3072, 8192, 28, 24, 8, 128256, True),
    "mistralai/Mistral-7B-Instruct-v0.3": _shape(4096, 14336, 32, 32, 8, 32768, False),
    "Qwen/Qwen2.5-7B-Instruct": _shape(3584, 18944, 28, 28, 4, 152064, False),
    "Qwen/Qwen3-8B": _shape(4096, 12288, 36, 32, 8, 151936, False, head_dim=128),
    "google/gemma-2-9b-it": _shape(3584, 14336, 42, 16, 8, 256000, True, head_dim=256),
    "microsoft/Phi-3.5-mini-instruct": _shape(3072, 8192, 32, 32, 32, 32064, False),
}


def shape_from_config(config: Any) -> ModelShape:
    """A transformers config (multimodal ones: their text part) as a ModelShape."""
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    required = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "vocab_size")
    missing = [name for name in required if getattr(text, name, None) is None]
    if missing:
        raise ValueError(
            f"the model config lacks {', '.join(missing)}: cannot estimate {type(text).__name__}"
        )
    heads = text.num_attention_heads
    return ModelShape(
        hidden_size=text.hidden_size,
        intermediate_size=text.intermediate_size,
        num_layers=text.num_hidden_layers,
        num_heads=heads,
        num_kv_heads=getattr(text, "num_key_value_heads", None) or heads,
        head_dim=getattr(text, "head_dim", None) or text.hidden_size // heads,
        vocab_size=text.vocab_size,
        tied_embeddings=bool(getattr(config, "tie_word_embeddings", False)),
    )


def load_shape(model_cfg: Any) -> tuple[ModelShape, Any]:
    """(shape, config or None): the shipped presets from the table, anything else from its config.json."""
    from llmft.model.loader import resolve_model_path

    if model_cfg.tiny is None and model_cfg.name_or_path in KNOWN_SHAPES:
        return KNOWN_SHAPES[model_cfg.name_or_path], None
    from transformers import AutoConfig

    path = resolve_model_path(model_cfg)
    try:
        config = AutoConfig.from_pretrained(
            path, revision=model_cfg.revision, trust_remote_code=model_cfg.trust_remote_code
        )
    except OSError as err:
        raise OSError(
            f"no config.json for {path!r} (not local, not cached, hub unreachable) and it is not one of the "
            f"presets llmft knows the shape of: {', '.join(KNOWN_SHAPES)}. Cause: {err}"
        ) from err
    return shape_from_config(config), config


# --- the estimate ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MemoryEstimate:
    model: str
    setting: str  # one line: method, dtypes, batch
    params: int
    trainable: int
    weights: float  # bytes
    gradients: float
    optimizer: float
    activations: float

    @property
    def total(self) -> float:
        return self.weights + self.gradients + self.optimizer + self.activations

    def table(self) -> str:
        rows = [
            ("weights", self.weights),
            ("gradients", self.gradients),
            ("optimizer states", self.optimizer),
            ("activations", self.activations),
            ("total", self.total),
        ]
        lines = [
            f"Memory estimate per device for {self.model}",
            f"  {self.setting}",
            f"  parameters {_count(self.params)}, trainable {_count(self.trainable)}",
        ]
        lines += [f"  {name:<17}{_size(value):>10}" for name, value in rows]
        return "\n".join(lines)


def _count(n: int) -> str:
    return f"{n / 1e9:.2f} B" if n >= 1e9 else f"{n / 1e6:.2f} M"


def _size(n: float) -> str:
    return f"{n / GB:.2f} GB" if n >= GB else f"{n / 1e6:.1f} MB"


def _weight_bits(quant_cfg: Any, config: Any) -> float | None:
    """Bits per quantized linear weight, or None when the weights are not quantized."""
    method = quant_cfg.method
    if method == "bnb_4bit":
        return BNB_4BIT_BITS[bool(quant_cfg.double_quant)]
    if method == "bnb_8bit":
        return BNB_8BIT_BITS
    if method in ("gptq", "awq"):
        declared = getattr(config, "quantization_config", None) or {}
        bits = declared.get("bits") if isinstance(declared, dict) else getattr(declared, "bits", None)
        return (bits or PREQUANTIZED_DEFAULT_BITS) + 0.25
    return None


def _lora_params(shape: ModelShape, method_cfg: Any, model_cfg: Any) -> int:
    target = method_cfg.lora_target
    if target == "auto":
        names = list(model_cfg.lora_target)
    elif target == "all":
        names = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    else:
        names = [n.strip() for n in target.split(",")] if isinstance(target, str) else list(target)
    modules = shape.linear_modules()
    per_layer = sum(method_cfg.lora_rank * sum(modules[name]) for name in names if name in modules)
    if method_cfg.use_dora:
        per_layer += sum(modules[name][1] for name in names if name in modules)  # magnitude vectors
    return per_layer * shape.num_layers


def _extra_params(shape: ModelShape, names: list[str]) -> int:
    """Embeddings / head trained in full (method.additional_target, method.freeze_extra_modules)."""
    sizes = {"embed_tokens": shape.embedding_params, "lm_head": shape.head_params or shape.embedding_params}
    return sum(sizes.get(name, shape.hidden_size) for name in names)


def _trainable_layers(shape: ModelShape, method_cfg: Any) -> int:
    """Decoder layers whose activations backward needs: all but the frozen ones below the trainable part."""
    if method_cfg.finetuning_type == "freeze" and method_cfg.freeze_trainable_layers > 0:
        return min(method_cfg.freeze_trainable_layers, shape.num_layers)
    return shape.num_layers


def _activation_bytes(
    shape: ModelShape, tokens: int, act_bytes: int, layers: int, checkpointing: bool
) -> float:
    h, i = shape.hidden_size, shape.intermediate_size
    kv = shape.num_kv_heads * shape.head_dim
    # What autograd keeps per token in one layer: the two RMSNorms' fp32 inputs, the normed inputs of the
    # projections, q/k/v/output of attention, the MLP's gate, activation, up and product.
    per_layer = 8 * h + act_bytes * (5 * h + 2 * kv + 4 * i)
    if checkpointing:
        saved = layers * act_bytes * h + per_layer  # each layer's input, plus one layer recomputed
    else:
        saved = layers * per_layer
    logits = shape.vocab_size * (act_bytes + 8)  # the head's output, its fp32 copy and log-softmax
    return tokens * (saved + logits)


def estimate_memory(
    cfg: Any, shape: ModelShape, config: Any = None, dtype_bytes: int | None = None
) -> MemoryEstimate:
    """The estimate for the composed config `cfg` on a model of this shape. dtype_bytes: bytes per weight
    of the model dtype (default: from model.dtype / hardware.precision)."""
    method, quant = cfg.method, cfg.quantization
    dtype_bytes = dtype_bytes or _model_dtype_bytes(cfg)
    bits = _weight_bits(quant, config)
    linear = shape.num_layers * shape.layer_linear_params
    other = shape.total_params - linear
    if bits is None:
        weights = shape.total_params * dtype_bytes
    else:  # k-bit preparation upcasts every non-quantized weight to fp32 (gptq/awq keep theirs)
        weights = linear * bits / 8 + other * (dtype_bytes if quant.method in ("gptq", "awq") else 4)

    kind = method.finetuning_type
    if kind == "lora":
        trainable = _lora_params(shape, method, cfg.model) + _extra_params(
            shape, list(method.additional_target)
        )
        trainable_bytes = 4
        weights += trainable * trainable_bytes
    elif kind == "freeze":
        layers = min(abs(method.freeze_trainable_layers), shape.num_layers)
        trainable = layers * shape.layer_params + _extra_params(shape, list(method.freeze_extra_modules))
        trainable_bytes = dtype_bytes
    else:
        trainable, trainable_bytes = shape.total_params, dtype_bytes

    optim = method.optim
    state_bytes = (
        0 if optim in STATELESS_OPTIMIZERS else 2 if optim in EIGHT_BIT_OPTIMIZERS else 2 * trainable_bytes
    )
    explicit_compute = bits is not None and quant.compute_dtype != "auto"
    compute_bytes = (4 if quant.compute_dtype == "float32" else 2) if explicit_compute else dtype_bytes
    tokens = method.per_device_train_batch_size * cfg.data.cutoff_len
    activations = _activation_bytes(
        shape, tokens, compute_bytes, _trainable_layers(shape, method), method.gradient_checkpointing
    )
    precision = {4: "fp32", 2: "16-bit"}[dtype_bytes]
    weights_kind = f"{quant.method} base" if bits is not None else f"{precision} weights"
    setting = (
        f"{kind} ({weights_kind}), {method.optim}, batch {method.per_device_train_batch_size} x "
        f"{cfg.data.cutoff_len} tokens, gradient checkpointing {'on' if method.gradient_checkpointing else 'off'}"
    )
    return MemoryEstimate(
        model=str(cfg.model.name_or_path),
        setting=setting,
        params=shape.total_params,
        trainable=trainable,
        weights=weights,
        gradients=trainable * trainable_bytes,
        optimizer=trainable * state_bytes,
        activations=activations,
    )


def _model_dtype_bytes(cfg: Any) -> int:
    from llmft.model.loader import resolve_dtype

    return resolve_dtype(cfg.model, cfg.hardware).itemsize


def memory_report(cfg: Any) -> str:
    """The estimate table for `cfg`, or one line saying why there is none (it must never stop a run)."""
    try:
        shape, config = load_shape(cfg.model)
        return estimate_memory(cfg, shape, config).table()
    except (OSError, ValueError, KeyError) as err:
        return f"Memory estimate unavailable: {err}"


def estimate_task(cfg: Any, run_dir: Path) -> float:
    """task=estimate: print the table without loading weights; return the total in GB (for sweeps)."""
    shape, config = load_shape(cfg.model)
    estimate = estimate_memory(cfg, shape, config)
    print(estimate.table(), flush=True)
    return round(estimate.total / GB, 2)
