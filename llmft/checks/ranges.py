"""Numbers that type-check but cannot train: sizes, rates, step counts out of their range."""

from __future__ import annotations

from omegaconf import DictConfig

from llmft.checks.common import choice_problem

# transformers' SchedulerType values (kept here: the config layer imports no transformers;
# tests/test_bad_input.py checks the list still matches).
LR_SCHEDULERS = (
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
    "inverse_sqrt",
    "reduce_lr_on_plateau",
    "cosine_with_min_lr",
    "cosine_warmup_with_min_lr",
    "warmup_stable_decay",
    "greedy",
)

MIN_CUTOFF_LEN = 2  # a prompt token and a reply token; fewer cannot train anything


def _rule(ok: bool, key: str, value: object, needs: str) -> str | None:
    return None if ok else f"{key}={value} {needs}."


def ranges(cfg: DictConfig) -> list[str]:
    data, method = cfg.data, cfg.method
    rules = [
        _rule(
            data.cutoff_len >= MIN_CUTOFF_LEN,
            "data.cutoff_len",
            data.cutoff_len,
            f"must be at least {MIN_CUTOFF_LEN} tokens (typical: 512-4096)",
        ),
        _rule(
            data.max_samples is None or data.max_samples > 0,
            "data.max_samples",
            data.max_samples,
            "must be > 0 (or null for all rows)",
        ),
        _rule(method.learning_rate > 0, "method.learning_rate", method.learning_rate, "must be > 0"),
        _rule(
            method.warmup_steps >= 0,
            "method.warmup_steps",
            method.warmup_steps,
            "must be >= 0 (steps, or a fraction < 1 of all steps)",
        ),
        _rule(method.weight_decay >= 0, "method.weight_decay", method.weight_decay, "must be >= 0"),
        _rule(
            method.max_grad_norm >= 0,
            "method.max_grad_norm",
            method.max_grad_norm,
            "must be >= 0 (0 = no clipping)",
        ),
        _rule(
            method.per_device_train_batch_size > 0,
            "method.per_device_train_batch_size",
            method.per_device_train_batch_size,
            "must be > 0",
        ),
        _rule(
            method.per_device_eval_batch_size > 0,
            "method.per_device_eval_batch_size",
            method.per_device_eval_batch_size,
            "must be > 0",
        ),
        _rule(
            method.gradient_accumulation_steps > 0,
            "method.gradient_accumulation_steps",
            method.gradient_accumulation_steps,
            "must be > 0",
        ),
        _rule(
            method.num_train_epochs >= 0, "method.num_train_epochs", method.num_train_epochs, "must be >= 0"
        ),
        _rule(method.logging_steps > 0, "method.logging_steps", method.logging_steps, "must be > 0"),
        _rule(method.save_steps > 0, "method.save_steps", method.save_steps, "must be > 0"),
        _rule(
            method.eval_steps is None or method.eval_steps > 0,
            "method.eval_steps",
            method.eval_steps,
            "must be > 0 (or null: logging_steps)",
        ),
        choice_problem("method.lr_scheduler_type", method.lr_scheduler_type, LR_SCHEDULERS),
    ]
    if method.finetuning_type == "lora":
        rules += [
            _rule(method.lora_rank > 0, "method.lora_rank", method.lora_rank, "must be > 0 (typical: 8-64)"),
            _rule(
                method.lora_alpha > 0,
                "method.lora_alpha",
                method.lora_alpha,
                "must be > 0 (typical: 2 x rank)",
            ),
            _rule(
                0 <= method.lora_dropout < 1, "method.lora_dropout", method.lora_dropout, "must be in [0, 1)"
            ),
        ]
    if (
        method.finetuning_type == "freeze"
        and method.freeze_trainable_layers == 0
        and not method.freeze_extra_modules
    ):
        rules.append(
            "method=freeze leaves nothing to train: set method.freeze_trainable_layers to a non-zero count "
            "(N > 0: the last N layers, < 0: the first N) or name method.freeze_extra_modules."
        )
    return [problem for problem in rules if problem]
