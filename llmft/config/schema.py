"""Typed schemas behind every config group.

Hydra merges each group's YAML into these dataclasses, so a misspelled key or a wrong
type fails at compose time. This module imports no torch, transformers or TRL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING


@dataclass
class TaskConfig:
    name: str = "train"  # train | chat | serve | predict | eval | export
    objective: str = "eval_loss"  # metric run.py returns to sweepers (falls back to train_loss)
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None
    export_dir: str | None = None


@dataclass
class TinyModelSpec:
    """A small model built offline on first use (see llmft.model.tiny)."""

    architecture: str = "llama"  # llama | qwen2 | qwen3 | mistral | gemma | phi3
    vocab_size: int = 2048
    hidden_size: int = 64
    intermediate_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    max_position_embeddings: int = 1024


@dataclass
class ModelConfig:
    name_or_path: str = MISSING  # hub id or local directory
    template: str | None = None  # named template in llmft.data.templates; None = the tokenizer's own
    dtype: str = "auto"  # auto (bf16 on capable GPUs, else fp32) | float32 | bfloat16 | float16
    attn_implementation: str = "sdpa"  # sdpa | flash_attention_2 | eager
    lora_target: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])  # this family's LoRA modules
    adapter_path: str | None = None  # a trained adapter to load (or continue training)
    revision: str | None = None
    trust_remote_code: bool = False
    tiny: TinyModelSpec | None = None  # set for models built offline instead of downloaded


@dataclass
class MethodConfig:
    stage: str = "sft"  # pt | sft | rm | dpo | kto | ppo | grpo
    finetuning_type: str = "lora"  # lora | freeze | full
    # LoRA
    lora_rank: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    lora_target: Any = "auto"  # auto (the model preset's) | all (every linear but the head) | [module names]
    use_dora: bool = False
    use_rslora: bool = False
    # freeze: train the last N decoder layers (negative: the first N), restricted to these module kinds
    freeze_trainable_layers: int = 2
    freeze_trainable_modules: list[str] = field(default_factory=lambda: ["all"])
    freeze_extra_modules: list[str] = field(default_factory=list)  # e.g. [embed_tokens, lm_head]
    # optimisation
    learning_rate: float = 2e-4
    num_train_epochs: float = 3.0
    max_steps: int = -1  # > 0 overrides num_train_epochs
    per_device_train_batch_size: int = 4
    per_device_eval_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    lr_scheduler_type: str = "cosine"
    warmup_steps: float = 0.0  # steps, or a fraction (< 1) of all steps
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    optim: str = "adamw_torch"
    gradient_checkpointing: bool = False
    # bookkeeping
    logging_steps: int = 5
    save_steps: int = 100
    save_total_limit: int | None = 2
    eval_steps: int | None = None  # default: logging_steps when data.val_size > 0


@dataclass
class DatasetColumns:
    """Column names in the source file, as in LLaMA-Factory's dataset_info.json."""

    prompt: str = "instruction"
    query: str = "input"
    response: str = "output"
    history: str | None = None
    messages: str = "conversations"
    system: str | None = None
    tools: str | None = None
    chosen: str | None = None
    rejected: str | None = None
    kto_tag: str | None = None
    text: str = "text"


@dataclass
class RoleTags:
    """How sharegpt-style rows spell roles."""

    role_tag: str = "from"
    content_tag: str = "value"
    user_tag: str = "human"
    assistant_tag: str = "gpt"
    observation_tag: str = "observation"
    function_tag: str = "function_call"
    system_tag: str = "system"


@dataclass
class DatasetConfig:
    """One dataset entry; `dataset=[a,b]` selects several."""

    path: str = MISSING  # local file (json, jsonl, csv, parquet; relative to the project root) or hub id
    source: str = "auto"  # auto (a file if it exists or has a data extension) | file | hub
    split: str = "train"
    subset: str | None = None
    formatting: str = "alpaca"  # alpaca | sharegpt | openai | text
    ranking: bool = False  # preference data (chosen/rejected)
    num_samples: int | None = None  # take this many rows (repeat if more than exist)
    columns: DatasetColumns = field(default_factory=DatasetColumns)
    tags: RoleTags = field(default_factory=RoleTags)


@dataclass
class DataConfig:
    cutoff_len: int = 1024  # tokens per sample after templating
    max_samples: int | None = None  # per dataset, for quick runs
    val_size: float = 0.0  # fraction (< 1) or number of samples held out for eval_loss
    train_on_prompt: bool = False  # False: loss only on assistant tokens
    mask_history: bool = False  # True: train only the last assistant turn
    packing: bool = False  # pack samples into cutoff_len blocks (padding-free, isolated)
    mix_strategy: str = "concat"  # concat | interleave_under | interleave_over
    interleave_probs: list[float] | None = None
    skip_malformed: bool = False  # drop (and count) rows that do not convert, instead of failing
    overwrite_cache: bool = False
    cache_dir: str | None = None  # default: $LLMFT_CACHE/datasets


@dataclass
class QuantizationConfig:
    method: str = "none"  # none | bnb_4bit | bnb_8bit
    quant_type: str = "nf4"  # nf4 | fp4 (4-bit only)
    double_quant: bool = True
    compute_dtype: str = "auto"  # dtype of 4-bit matmuls; auto follows the model dtype


@dataclass
class HardwareConfig:
    device: str = "auto"  # auto | cpu | cuda
    precision: str = "auto"  # auto (bf16 where supported, else fp32) | fp32 | bf16 | fp16
    dataloader_num_workers: int = 0


@dataclass
class LoggerConfig:
    """Selecting several presets (`logger=[mlflow,tensorboard]`) switches several on."""

    tensorboard: bool = False
    mlflow: bool = False
    wandb: bool = False
    tracking_uri: str | None = None  # MLflow; default: the sqlite store under outputs/
    experiment_name: str = "llmft"
    wandb_project: str = "llmft"
    wandb_mode: str = "offline"  # offline works without an API key


@dataclass
class LlmftConfig:
    seed: int = 42
    task: TaskConfig = field(default_factory=TaskConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    dataset: dict[str, DatasetConfig] = field(default_factory=dict)
    data: DataConfig = field(default_factory=DataConfig)
    quantization: QuantizationConfig = field(default_factory=QuantizationConfig)
    hardware: HardwareConfig = field(default_factory=HardwareConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
