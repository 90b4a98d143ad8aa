"""The benchmark's workloads: the run.py overrides of each, and the FLOPs one trained token costs.

FLOP formula (per non-padding token; a multiply-add counts 2):
- N = parameters that take part in matmuls: the decoder's linear layers and the LM head (embeddings
  are lookups); attention adds 4 * layers * hidden * c forward, c = the mean causal context of a token
  (packed samples attend only to themselves, so c is computed per sample).
- forward 2N + attention; backward 2N for the activation gradients, plus 2N again for weight gradients
  only where weights train (full fine-tuning), plus twice the attention.
- LoRA: frozen weights get no weight gradient (4N); the adapters add 6 FLOPs per adapter parameter.
- DPO: the policy's forward and backward on chosen and rejected, plus the reference's forward (2N +
  attention) on the same tokens.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class ModelShape:
    hidden: int
    layers: int
    intermediate: int
    vocab: int
    heads: int
    kv_heads: int

    @classmethod
    def from_dir(cls, model_dir: Path) -> ModelShape:
        config = json.loads((Path(model_dir) / "config.json").read_text())
        return cls(
            hidden=config["hidden_size"],
            layers=config["num_hidden_layers"],
            intermediate=config["intermediate_size"],
            vocab=config["vocab_size"],
            heads=config["num_attention_heads"],
            kv_heads=config.get("num_key_value_heads") or config["num_attention_heads"],
        )

    def linear_shapes(self) -> list[tuple[int, int]]:
        """(in, out) of every linear layer of one decoder layer."""
        kv = self.hidden * self.kv_heads // self.heads
        d, i = self.hidden, self.intermediate
        return [(d, d), (d, kv), (d, kv), (d, d), (d, i), (d, i), (i, d)]

    def matmul_params(self) -> int:
        return self.layers * sum(a * b for a, b in self.linear_shapes()) + self.vocab * self.hidden

    def lora_params(self, rank: int) -> int:
        return self.layers * sum(rank * (a + b) for a, b in self.linear_shapes())

    def attention_forward(self, context: float) -> float:
        return 4 * self.layers * self.hidden * context


@dataclass(frozen=True)
class Workload:
    name: str
    stage: str  # sft | dpo
    finetuning: str  # lora | full
    overrides: tuple[str, ...] = field(default_factory=tuple)
    lora_rank: int = 8
    gpu_only: bool = False  # the Llama-3-8B-shaped workload

    def flops_per_token(self, shape: ModelShape, context: float) -> float:
        n, attention = shape.matmul_params(), shape.attention_forward(context)
        if self.finetuning == "full":
            train = 6 * n + 3 * attention
        else:
            train = 4 * n + 6 * shape.lora_params(self.lora_rank) + 3 * attention
        reference = 2 * n + attention if self.stage == "dpo" else 0
        return train + reference


WORKLOADS = {
    workload.name: workload
    for workload in (
        Workload("sft", "sft", "lora", ("method=lora_sft", "data.packing=false")),
        Workload(
            "sft_padded", "sft", "lora", ("method=lora_sft", "data.packing=false", "data.padding_free=false")
        ),
        Workload("sft_packed", "sft", "lora", ("method=lora_sft", "data.packing=true")),
        Workload(
            "dpo", "dpo", "lora", ("method=lora_dpo", "method.pref_loss=sigmoid", "method.pref_beta=0.1")
        ),
        Workload("full_sft", "sft", "full", ("method=full_sft", "data.packing=false")),
        Workload(
            "llama3_8b_lora_packed",
            "sft",
            "lora",
            (
                "method=lora_sft",
                "model.dtype=auto",  # bf16 on the GPU (the tiny preset loads float32)
                "data.packing=true",
                "data.cutoff_len=4096",
                "method.per_device_train_batch_size=2",
                "method.lora_rank=16",
                "method.lora_alpha=32",
            ),
            lora_rank=16,
            gpu_only=True,
        ),
    )
}
DEFAULT_WORKLOADS = ("sft", "sft_packed", "dpo", "full_sft")  # + llama3_8b_lora_packed on a GPU
