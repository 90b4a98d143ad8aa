"""What each training stage needs: the right kind of data, and a reward for online RL."""

from __future__ import annotations

import dataclasses

from omegaconf import DictConfig

from llmft.config.schema import PER_PAIR_PREF_LOSSES, MethodConfig, pref_batch_splits_exactly
from llmft.data.sources import STAGE_DATA, data_kind_problems
from llmft.model.directories import reward_model_problem


def stage_data(cfg: DictConfig) -> list[str]:
    """Each selected dataset holds what the stage trains on (pairs, KTO labels, plain text, chats, prompts)."""
    stage = cfg.method.stage
    return data_kind_problems(cfg.dataset, STAGE_DATA[stage], f"method.stage={stage}")


# Online RL stages: they sample replies to prompts and score them with a reward model or functions.
RL_STAGES = ("ppo", "grpo", "rloo")


def online_rl(cfg: DictConfig) -> list[str]:
    method = cfg.method
    if method.stage not in RL_STAGES:
        return []
    problems = []
    if not method.reward_model and not method.reward_funcs:
        problems.append(
            f"method.stage={method.stage} needs a reward: set method.reward_model=<rm run dir> and/or "
            "method.reward_funcs (e.g. [match_reference], or [{_target_: llmft.train.rewards.Contains, text: yes}])."
        )
    if method.reward_model and (problem := reward_model_problem(method.reward_model)):
        problems.append(problem)
    for position, spec in enumerate(method.reward_funcs):
        if not isinstance(spec, str) and "_target_" not in spec:
            problems.append(
                f"method.reward_funcs[{position}] must be a built-in name or a mapping with _target_."
            )
    batch = method.per_device_train_batch_size
    if method.stage == "ppo" and method.finetuning_type != "lora":
        problems.append(
            "method.stage=ppo needs LoRA (its reference model is the base with the adapter disabled), but "
            f"method.finetuning_type={method.finetuning_type}. Use method=lora_ppo."
        )
    if method.stage == "ppo" and (cfg.hardware.nproc_per_node != 1 or cfg.hardware.nnodes != 1):
        problems.append("method.stage=ppo runs in one process: use hardware.nproc_per_node=1 and nnodes=1.")
    if method.stage == "ppo" and (method.mini_batch_size < 1 or batch % method.mini_batch_size):
        problems.append(
            f"method.mini_batch_size={method.mini_batch_size} must divide method.per_device_train_batch_size={batch}."
        )
    rollouts = batch * method.gradient_accumulation_steps
    if method.stage != "ppo" and (method.num_generations < 2 or rollouts % method.num_generations):
        problems.append(
            f"method.num_generations={method.num_generations} must be >= 2 and divide the replies sampled per step "
            f"(per_device_train_batch_size * gradient_accumulation_steps = {rollouts})."
        )
    if method.temperature <= 0 or method.max_completion_length <= 0:
        problems.append(
            "method.temperature and method.max_completion_length must be > 0 (sampling is the point)."
        )
    return problems  # the datasets' kind: stage_data


# The knob that runs each stage's batch in passes (gradient accumulation over equal parts of it).
PASS_KNOBS = {"dpo": "pref_pairs_per_pass", "sft": "rows_per_pass", "pt": "rows_per_pass"}


def batch_passes(cfg: DictConfig) -> list[str]:
    """method.pref_pairs_per_pass (dpo) and method.rows_per_pass (sft, pt) split a batch evenly."""
    method, batch = cfg.method, cfg.method.per_device_train_batch_size
    knob = PASS_KNOBS.get(method.stage)
    per_pass = method.get(knob) if knob else None
    if per_pass is None:
        return []
    if per_pass < 1 or batch % per_pass:
        return [f"method.{knob}={per_pass} must divide method.per_device_train_batch_size={batch}."]
    if knob == "pref_pairs_per_pass" and per_pass < batch and not pref_batch_splits_exactly(method):
        return [
            f"method.pref_pairs_per_pass={per_pass} splits each batch into passes, which keeps the loss only for "
            f"{', '.join(PER_PAIR_PREF_LOSSES)} without method.pref_ftx (here pref_loss={method.pref_loss}, "
            f"pref_ftx={method.pref_ftx}): unset it, or lower per_device_train_batch_size instead."
        ]
    return []


# The stage knobs of MethodConfig and the stages that read them; the others ignore them.
STAGE_KNOBS = {
    "packing": ("pt", "sft"),
    "rows_per_pass": ("pt", "sft"),
    "pref_loss": ("dpo",),
    "pref_beta": ("dpo", "kto"),
    "pref_ftx": ("dpo",),
    "precompute_ref_log_probs": ("dpo",),
    "pref_pairs_per_pass": ("dpo",),
    "simpo_gamma": ("dpo",),
    "kto_desirable_weight": ("kto",),
    "kto_undesirable_weight": ("kto",),
    **dict.fromkeys(
        ("reward_model", "reward_funcs", "max_completion_length", "temperature", "kl_coef", "cliprange"),
        RL_STAGES,
    ),
    "ppo_epochs": RL_STAGES,
    "num_generations": ("grpo", "rloo"),
    **dict.fromkeys(("mini_batch_size", "gamma", "lam", "cliprange_value", "vf_coef"), ("ppo",)),
}
METHOD_DEFAULTS = {field.name: field for field in dataclasses.fields(MethodConfig)}


def _default(knob: str):
    field = METHOD_DEFAULTS[knob]
    return field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default


def ignored_knobs(cfg: DictConfig) -> list[str]:
    """Stage knobs set away from their default for a stage that does not read them (warnings, not errors:
    the run is still what the user asked for, less the knob)."""
    stage = cfg.method.stage
    return [
        f"method.{knob}={cfg.method[knob]} is ignored by method.stage={stage} (it applies to "
        f"{', '.join(stages)}): drop it, or pick a method of that stage."
        for knob, stages in STAGE_KNOBS.items()
        if stage not in stages and cfg.method[knob] != _default(knob)
    ]
