"""Process counts, distributed strategies and backends that cannot work together or here."""

from __future__ import annotations

from omegaconf import DictConfig

from llmft.config.paths import resolve_local_path
from llmft.model.optional import missing_packages


def processes(hardware: DictConfig) -> list[str]:
    """Process counts and the multi-node rendezvous (GPU counts are checked at launch, where CUDA is seen)."""
    nproc, problems = hardware.nproc_per_node, []
    if nproc != "auto" and not (isinstance(nproc, int) and nproc >= 1):
        problems.append(
            f"hardware.nproc_per_node={nproc!r} must be a positive integer or auto (one per GPU)."
        )
    if nproc == "auto" and hardware.scheduler == "slurm":
        problems.append("hardware.nproc_per_node=auto cannot size a Slurm job: give the processes per node.")
    if nproc == "auto" and hardware.device == "cpu":
        problems.append("hardware.nproc_per_node=auto counts GPUs, but hardware.device=cpu: give a number.")
    if hardware.nnodes < 1 or not 0 <= hardware.node_rank < hardware.nnodes:
        problems.append(
            f"hardware.node_rank={hardware.node_rank} must lie in [0, hardware.nnodes={hardware.nnodes})."
        )
    if hardware.nnodes > 1 and hardware.scheduler == "none" and not hardware.master_addr:
        problems.append(
            f"hardware.nnodes={hardware.nnodes} needs the rank-0 node's address: set MASTER_ADDR (and "
            "NODE_RANK) on every node with hardware=multi_node, or hardware.master_addr=<host>."
        )
    return problems


def distributed_setup(cfg: DictConfig) -> list[str]:
    """Distributed strategies and backends that cannot work together, or not on this install."""
    hardware, problems = cfg.hardware, processes(cfg.hardware)
    if hardware.backend == "nccl" and hardware.device == "cpu":
        problems.append("hardware.backend=nccl needs CUDA GPUs, but hardware.device=cpu: use backend=gloo.")
    if hardware.strategy in ("fsdp", "deepspeed") and hardware.device == "cpu":
        problems.append(
            f"hardware.strategy={hardware.strategy} shards over GPUs only (accelerate runs a CPU job as plain "
            "DDP): use hardware.strategy=ddp on the CPU."
        )
    if hardware.strategy in ("fsdp", "deepspeed") and cfg.method.pissa_init:
        problems.append(
            f"method.pissa_init=true cannot be saved from sharded weights (hardware.strategy={hardware.strategy}): "
            "its adapter must be converted against the unsharded initial one. Use hardware=multi_gpu (DDP)."
        )
    if hardware.strategy == "fsdp" and cfg.quantization.method != "none":
        problems.append(
            f"hardware.strategy=fsdp cannot shard quantization={cfg.quantization.method} weights "
            "(bitsandbytes 8-bit cannot be sharded; 4-bit needs a quant storage dtype llmft does not set): "
            "use hardware=multi_gpu (DDP) for QLoRA, or quantization=none."
        )
    if hardware.strategy == "deepspeed":
        if missing_packages(["deepspeed"]):
            problems.append(
                "hardware.strategy=deepspeed needs the deepspeed package: pip install deepspeed "
                "(on a CUDA machine), or use hardware=fsdp."
            )
        if not hardware.deepspeed_config:
            problems.append("hardware.strategy=deepspeed needs hardware.deepspeed_config (a JSON file).")
        elif resolve_local_path(hardware.deepspeed_config) is None:
            problems.append(
                f"hardware.deepspeed_config={hardware.deepspeed_config!r} does not exist; the shipped ones are "
                "conf/hardware/deepspeed/{zero2,zero3,zero3_offload}.json."
            )
    elif hardware.deepspeed_config:
        problems.append(
            f"hardware.deepspeed_config is set but hardware.strategy={hardware.strategy}: "
            "use hardware=deepspeed_z2|deepspeed_z3|deepspeed_z3_offload, or drop the config."
        )
    if hardware.scheduler == "slurm" and hardware.slurm.timeout_min * 60 <= hardware.slurm.signal_delay_s:
        problems.append(
            f"hardware.slurm.signal_delay_s={hardware.slurm.signal_delay_s} leaves no time before the "
            f"checkpoint warning within timeout_min={hardware.slurm.timeout_min}: lower it."
        )
    return problems
