"""LoRA variants beyond LoraConfig's switches (DoRA, rsLoRA): PiSSA initialisation, LoRA+ learning
rates and extra fully trained modules.

PiSSA moves the principal part of each target weight into the adapter and leaves the residual in the
base, so its adapter only fits that modified base. The adapter as it was right after initialisation is
kept, and saving converts the trained one back into a plain LoRA adapter (rank 2r) for the original
base, which is what chat, serve and export load.

LoRA+ gives the B matrices a larger learning rate than the A matrices. The ratio rides on the model
(set by apply_finetuning), so every stage's trainer picks it up through `loraplus_optimizer_spec`.
"""

from __future__ import annotations

import functools
import logging
import shutil
import tempfile
import weakref
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

PISSA_INITIAL_DIR = "llmft_pissa_initial_dir"  # model attribute: where the freshly initialised adapter lies
LORAPLUS_RATIO = "llmft_loraplus_lr_ratio"  # model attribute: method.loraplus_lr_ratio


def init_lora_weights(method_cfg: Any) -> bool | str:
    """LoraConfig.init_lora_weights for method.pissa_init / method.pissa_iter."""
    if not method_cfg.pissa_init:
        return True
    return "pissa" if method_cfg.pissa_iter <= 0 else f"pissa_niter_{method_cfg.pissa_iter}"


def modules_to_save(model, method_cfg: Any) -> list[str] | None:
    """method.additional_target as LoraConfig.modules_to_save, checked against the model's modules."""
    wanted = list(method_cfg.additional_target)
    if not wanted:
        return None
    leaves = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules() if name}
    unknown = [name for name in wanted if name not in leaves]
    if unknown:
        holding_weights = {
            name.rsplit(".", 1)[-1]
            for name, module in model.named_modules()
            if ".layers." not in name and next(module.parameters(recurse=False), None) is not None
        }
        raise ValueError(
            f"method.additional_target: {unknown} match no module of this model; the modules outside the "
            f"decoder layers are: {', '.join(sorted(holding_weights))}"
        )
    return wanted


def remember_pissa_initial_adapter(peft_model) -> None:
    """Save the just-initialised PiSSA adapter; `save_pretrained` converts against it."""
    directory = tempfile.mkdtemp(prefix="llmft-pissa-init-")
    weakref.finalize(peft_model, shutil.rmtree, directory, ignore_errors=True)  # gone with the model
    peft_model.save_pretrained(directory)
    setattr(peft_model, PISSA_INITIAL_DIR, directory)


def save_pretrained(model, out_dir, **kwargs) -> None:
    """model.save_pretrained(out_dir, **kwargs), turning a PiSSA adapter into a plain LoRA adapter
    for the unmodified base."""
    initial = getattr(model, PISSA_INITIAL_DIR, None)
    if initial is not None:
        kwargs["path_initial_model_for_weight_conversion"] = initial
    model.save_pretrained(out_dir, **kwargs)


def mark_loraplus(model, ratio: float | None) -> None:
    if ratio is not None:
        setattr(model, LORAPLUS_RATIO, float(ratio))


def loraplus_optimizer_spec(model, args) -> tuple[Callable[[], Callable], dict] | None:
    """A (factory, kwargs) pair for Trainer.optimizer_cls_and_kwargs when the model asks for LoRA+.

    The Trainer calls factory() and then the result with the model it is about to optimise, at the
    moment it would build its own optimizer, so DeepSpeed/FSDP wrapping happens as usual. The
    optimizer class and its betas/eps come from args.optim as for any run.
    """
    ratio = getattr(model, LORAPLUS_RATIO, None)
    if ratio is None:
        return None
    from peft.optimizers import create_loraplus_optimizer
    from transformers import Trainer

    optimizer_cls, optimizer_kwargs = Trainer.get_optimizer_cls_and_kwargs(args, model)
    optimizer_kwargs = {k: v for k, v in optimizer_kwargs.items() if k != "lr"}
    build = functools.partial(
        create_loraplus_optimizer,
        optimizer_cls=optimizer_cls,
        lr=args.learning_rate,
        loraplus_lr_ratio=ratio,
        loraplus_weight_decay=args.weight_decay,
        **optimizer_kwargs,
    )
    logger.info("LoRA+: B matrices at learning rate %g x %g", args.learning_rate, ratio)
    return (lambda: build), {}
