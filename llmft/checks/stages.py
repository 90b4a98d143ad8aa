"""What each training stage needs: the right kind of data, and a reward for online RL."""

from __future__ import annotations

from omegaconf import DictConfig

from llmft.model.directories import reward_model_problem

# Stages that train on chosen/rejected pairs.
PAIRWISE_STAGES = ("rm", "dpo")


def stage_data(cfg: DictConfig) -> list[str]:
    """Each selected dataset holds what the stage trains on (pairs, KTO labels, plain text, chats)."""
    stage, problems = cfg.method.stage, []
    for name, entry in cfg.dataset.items():
        ranking, tagged = entry.ranking, bool(entry.columns.kto_tag)
        where = f"dataset.{name}: method.stage={stage}"
        if stage in PAIRWISE_STAGES and not ranking:
            problems.append(
                f"{where} trains on preference pairs, but the entry has no ranking: true. Fix: set ranking: true "
                "with columns.chosen and columns.rejected, or pick a pairs dataset (e.g. dataset=demo_dpo)."
            )
        elif stage == "kto" and not (ranking or tagged):
            problems.append(
                f"{where} needs desirable/undesirable labels or preference pairs, but the entry has neither. "
                "Fix: map the label with columns.kto_tag, set ranking: true, or pick dataset=demo_kto."
            )
        elif stage == "pt" and entry.formatting != "text":
            problems.append(
                f"{where} trains on plain text, but the entry is formatting: {entry.formatting}. Fix: use "
                "formatting: text with columns.text naming the text column, or pick dataset=demo_pt."
            )
        elif stage == "sft" and (ranking or tagged):
            kind = "preference pairs (ranking: true)" if ranking else "KTO labels (columns.kto_tag)"
            problems.append(
                f"{where} would train on every reply, but the entry holds {kind}. Fix: pick a method for it "
                "(method=lora_dpo, lora_rm or lora_kto), or an SFT dataset."
            )
    return problems


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
    problems += [
        f"dataset.{name}: method.stage={method.stage} samples replies to prompts, but the entry is plain text. "
        "Fix: pick a conversational dataset (e.g. dataset=demo_sft)."
        for name, entry in cfg.dataset.items()
        if entry.formatting == "text"
    ]
    return problems
