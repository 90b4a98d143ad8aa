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
    name: str = (
        "train"  # train | chat | serve | predict | eval | export | estimate | compare | board | pipeline
    )
    objective: str = "eval_loss"  # metric run.py returns to sweepers (falls back to train_loss)
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None  # serve: required Bearer key; board: sign-in token (or env LLMFT_API_KEY)
    export_dir: str | None = None  # export: where the merged model, tokenizer and Modelfile go
    # export: auto (model.dtype, else the checkpoint's) | float32 | bfloat16 | float16
    export_dtype: str = "auto"
    export_device: str = "cpu"  # export: where the merge runs: cpu | cuda | auto
    max_shard_size: str = "2GB"  # export: largest safetensors shard, e.g. 500MB, 5GB
    export_hub_model_id: str | None = None  # export: also push to this hub repo (token: env HF_TOKEN)
    export_quantization_bit: int | None = None  # export: GPTQ-quantize to 2/3/4/8 bits (GPU + gptqmodel)
    system_prompt: str | None = None  # chat: the conversation's system message
    served_model_name: str | None = None  # serve: the id /v1/models reports; default: from the model path
    max_request_bytes: int = 1_000_000  # serve: larger request bodies get 413
    max_tokens_limit: int = 4096  # serve: the most tokens one request may ask for
    max_concurrent_requests: int = 16  # serve: requests generated together (the hf engine batches them)
    max_waiting_requests: int = 64  # serve: requests queued behind the running ones; more get 503
    batch_size: int = 8  # predict, eval: prompts run together (left-padded)
    # eval: mmlu | ceval | cmmlu (hub layouts) | lm_eval | demo_mc | skills_mc (shipped) | a json/jsonl file
    benchmark: str = "demo_mc"
    data_dir: str | None = None  # eval: a local copy of mmlu/ceval/cmmlu in its hub layout; None = download
    n_shot: int = 5  # eval: solved dev-split examples of the same subject before each question
    # eval: the split whose questions are scored; None = the benchmark's (test; ceval: val)
    eval_split: str | None = None
    eval_subjects: list[str] = field(default_factory=list)  # eval: only these subjects; empty = all
    lm_eval_tasks: list[str] = field(
        default_factory=list
    )  # eval, benchmark=lm_eval: task names or YAML files
    # pipeline: step name -> overrides added to the job's for that step (each starts from the last's model)
    steps: dict[str, list[str]] = field(default_factory=dict)


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
    # Wider than real models' 0.02: a random model that small otherwise predicts a flat distribution
    # that LoRA alone barely bends, and the demo could not show learning.
    initializer_range: float = 0.1


@dataclass
class ModelConfig:
    name_or_path: str = MISSING  # hub id or local directory
    template: str | None = None  # named template in llmft.data.templates; None = the tokenizer's own
    dtype: str = "auto"  # auto (bf16 on capable GPUs, else fp32) | float32 | bfloat16 | float16
    attn_implementation: str = "sdpa"  # sdpa | flash_attention_2 | eager
    # sft/pt on CUDA: Liger's Triton kernels (RMSNorm, RoPE, SwiGLU, a fused linear cross-entropy that
    # never holds the logits) patched into the model when training starts; pip install liger-kernel
    liger_kernel: bool = False
    lora_target: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])  # this family's LoRA modules
    adapter_path: str | None = None  # a trained adapter to load (or continue training)
    revision: str | None = None
    trust_remote_code: bool = False
    # where a hub id downloads from: auto (ModelScope when USE_MODELSCOPE_HUB=1, else Hugging Face)
    # | huggingface | modelscope (pip install modelscope)
    hub: str = "auto"
    tiny: TinyModelSpec | None = None  # set for models built offline instead of downloaded


@dataclass
class MethodConfig:
    stage: str = "sft"  # pt | sft | rm | dpo | kto | ppo | grpo | rloo
    finetuning_type: str = "lora"  # lora | freeze | full
    # LoRA
    lora_rank: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    lora_target: Any = "auto"  # auto (the model preset's) | all (every linear but the head) | [module names]
    use_dora: bool = False
    use_rslora: bool = False
    # one autograd function per plain LoRA linear layer: PEFT's result with fewer activation-sized passes
    lora_fused: bool = True
    pissa_init: bool = False  # PiSSA: start from the principal singular vectors (base keeps the residual)
    pissa_iter: int = 16  # PiSSA fast-SVD iterations; <= 0: exact SVD (slow on big models)
    loraplus_lr_ratio: float | None = None  # LoRA+: B matrices learn at learning_rate * ratio (e.g. 16)
    # modules trained in full beside the adapter, e.g. [embed_tokens, lm_head]
    additional_target: list[str] = field(default_factory=list)
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
    optim: str = "adamw_torch_fused"  # transformers' default too: one fused kernel, not a loop over tensors
    gradient_checkpointing: bool = False
    # stage knobs (pt, dpo, kto; see conf/method/*_{pt,dpo,kto,orpo,simpo}.yaml)
    packing: bool | None = None  # pt presets: true; overrides data.packing when set
    # sft/pt: rows per forward pass; a step's batch runs as equal passes (gradient accumulation) and
    # transformers divides the loss by the step's token count, so the step is unchanged and only one
    # pass's activations are held. null: on the CPU, for transformers' own models, packed rows in passes
    # of at most 1024 tokens (two 512-token rows: 6% faster than one at 1.3x its peak memory),
    # the whole batch otherwise and on GPUs.
    rows_per_pass: int | None = None
    pref_loss: str = "sigmoid"  # dpo: sigmoid | ipo | hinge | orpo | simpo
    pref_beta: float = 0.1  # dpo/kto: higher stays closer to the reference; orpo: odds-ratio weight
    pref_ftx: float = 0.0  # dpo: weight of an SFT loss on the chosen replies added to the preference loss
    # dpo: the reference's log-probs in one pass over the data before training, instead of a reference
    # forward every step: a third less work per step, paid back from the second epoch on
    precompute_ref_log_probs: bool = False
    # dpo: pairs per forward pass; a step's batch runs as equal passes (gradient accumulation), so its loss
    # is unchanged and only one pass's activations are held. null: on the CPU, passes of at most 1024
    # tokens counting a pair as 2 x cutoff_len (one pair at 512: 0.8x the memory of two, 10-16% slower),
    # the whole batch on GPUs. Exact for sigmoid, ipo and hinge without pref_ftx.
    pref_pairs_per_pass: int | None = None
    simpo_gamma: float = 0.5  # simpo: target reward margin
    kto_desirable_weight: float = 1.0  # kto: loss weight of desirable rows (raise it when they are fewer)
    kto_undesirable_weight: float = 1.0  # kto: loss weight of undesirable rows
    # online RL (ppo, grpo, rloo; see conf/method/lora_{ppo,grpo,rloo}.yaml): rewards add up
    reward_model: str | None = None  # an rm run dir (its adapter/ or model/) or a reward model directory
    reward_funcs: list[Any] = field(default_factory=list)  # built-in names or {_target_: ...} callables
    max_completion_length: int = 64  # tokens sampled per reply during training
    temperature: float = 1.0  # sampling temperature of the rollouts (1.0 = the policy's own distribution)
    kl_coef: float = 0.05  # weight of the KL penalty to the reference (the model without the adapter)
    cliprange: float = 0.2  # the policy ratio is clipped to 1 ± cliprange
    num_generations: int = 4  # grpo/rloo: replies sampled per prompt (must divide the batch)
    ppo_epochs: int = 4  # ppo: optimisation passes over each rollout batch (grpo/rloo: num_iterations)
    mini_batch_size: int = 2  # ppo: rollouts per optimiser step (must divide per_device_train_batch_size)
    gamma: float = 1.0  # ppo: discount over reply tokens
    lam: float = 0.95  # ppo: GAE lambda (bias/variance trade-off of the advantages)
    cliprange_value: float = 0.2  # ppo: the value prediction moves at most this far from the rollout's
    vf_coef: float = 0.1  # ppo: weight of the value loss in the total loss
    # bookkeeping
    logging_steps: int = 5
    save_steps: int = 100
    save_total_limit: int | None = 2
    eval_steps: int | None = None  # default: logging_steps when data.val_size > 0


# DPO losses that are a mean over pairs: a batch run as equal passes of pairs keeps its loss and gradient
# (method.pref_pairs_per_pass); an added SFT term (pref_ftx) is a mean over tokens and would not.
PER_PAIR_PREF_LOSSES = ("sigmoid", "ipo", "hinge")


def pref_batch_splits_exactly(method: Any) -> bool:
    return method.pref_loss in PER_PAIR_PREF_LOSSES and not method.pref_ftx


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

    path: str = MISSING  # local file (json, jsonl, csv, parquet, txt; relative to the project root) or hub id
    source: str = "auto"  # auto (a file if it exists or has a data extension) | file | hub
    split: str = "train"
    subset: str | None = None
    folder: str | None = None  # hub datasets: read only this folder of the repository
    hub: str = "auto"  # hub datasets: auto (ModelScope when USE_MODELSCOPE_HUB=1) | huggingface | modelscope
    ms_path: str | None = None  # the ModelScope id when it differs from path (LLaMA-Factory's ms_hub_url)
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
    packing: bool = False  # pack samples into cutoff_len rows (more samples per step; each stays isolated)
    # no pad token computed: SFT concatenates each batch into one row, the pair, KTO and reward stages
    # unpad their padded batches inside the decoder (attention stays per sample); the results are the
    # padded batch's. false: padded rows with an attention mask
    padding_free: bool = True
    num_proc: int | None = None  # tokenising processes; default: one per core per 1000 rows
    mix_strategy: str = "concat"  # concat | interleave_under | interleave_over
    interleave_probs: list[float] | None = None
    skip_malformed: bool = False  # drop (and count) rows that do not convert, instead of failing
    overwrite_cache: bool = False
    cache_dir: str | None = None  # default: $LLMFT_CACHE/datasets


@dataclass
class QuantizationConfig:
    # none | bnb_4bit | bnb_8bit | gptq | awq (gptq/awq: the checkpoint is pre-quantized)
    method: str = "none"
    quant_type: str = "nf4"  # nf4 | fp4 (4-bit only)
    double_quant: bool = True
    compute_dtype: str = "auto"  # dtype of 4-bit matmuls; auto follows the model dtype


@dataclass
class SlurmConfig:
    """Where and how hardware=slurm / slurm_multi_node jobs run (mapped onto hydra.launcher.*)."""

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    gpus_per_node: int | None = None  # with GPUs, usually = hardware.nproc_per_node
    cpus_per_task: int | None = None
    mem_gb: int | None = None  # per node
    timeout_min: int = 60
    signal_delay_s: int = 120  # the USR2 warning this long before the time limit: checkpoint, requeue
    max_num_timeout: int = 3  # requeues after a time-out (preemptions do not count)
    array_parallelism: int = 256  # sweep points running at once
    setup: list[str] = field(default_factory=list)  # shell lines before srun (module load, source venv)
    dry_run: bool = False  # print the sbatch script and the jobs' overrides instead of submitting


@dataclass
class HardwareConfig:
    device: str = "auto"  # auto | cpu | cuda
    precision: str = "auto"  # auto (bf16 where supported, else fp32) | fp32 | bf16 | fp16
    dataloader_num_workers: int = 0
    # Processes: more than one per node (or more than one node) starts torchrun workers for you.
    nproc_per_node: Any = 1  # an int, or auto (one per visible GPU)
    nnodes: int = 1
    node_rank: int = 0
    master_addr: str | None = None  # the rank-0 node's address; needed when nnodes > 1 (not on Slurm)
    master_port: int = 29500
    backend: str = "auto"  # auto (nccl on GPUs, gloo on the CPU) | nccl | gloo
    strategy: str = "ddp"  # ddp | fsdp | deepspeed
    deepspeed_config: str | None = None  # z2 | z3 | z3_offload (shipped) or a JSON file path
    fsdp_reshard_after_forward: bool = True  # FSDP2: True shards everything (ZeRO-3-like), False ZeRO-2-like
    fsdp_cpu_offload: bool = False
    fsdp_transformer_layer_cls_to_wrap: list[str] | None = None  # default: the model's _no_split_modules
    scheduler: str = "none"  # none | slurm (set by the slurm presets; submit with python run.py -m)
    slurm: SlurmConfig = field(default_factory=SlurmConfig)


@dataclass
class LoggerConfig:
    """Selecting several presets (`logger=[mlflow,tensorboard]`) switches several on."""

    tensorboard: bool = False
    mlflow: bool = False
    wandb: bool = False
    swanlab: bool = False
    tracking_uri: str | None = None  # MLflow; default: $MLFLOW_TRACKING_URI, else sqlite:///outputs/mlflow.db
    experiment_name: str = "llmft"
    run_name: str | None = None  # default: <model>-<method>-<dataset>-<config hash>
    log_model: bool = False  # MLflow: also upload the adapter (or model) directory as artifacts
    wandb_project: str = "llmft"
    wandb_mode: str = "offline"  # offline | online | disabled; offline works without an API key
    swanlab_project: str = "llmft"
    swanlab_mode: str = "offline"  # offline | local | online | disabled; offline works without an API key


@dataclass
class GenerationConfig:
    """How chat, serve and predict generate; API requests override these per call."""

    backend: str = "hf"  # hf (transformers, any device) | vllm | sglang (GPU engines, when installed)
    do_sample: bool = True  # False: greedy decoding (temperature/top_p/top_k ignored)
    temperature: float = 0.7
    top_p: float = 0.9
    top_k: int = 50
    max_new_tokens: int = 512
    repetition_penalty: float = 1.0
    stop: list[str] = field(default_factory=list)  # strings that end the reply (not included in it)


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
    generation: GenerationConfig = field(default_factory=GenerationConfig)
