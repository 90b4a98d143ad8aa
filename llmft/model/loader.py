"""Tokenizer and model loading: where the weights come from, on which device, in which dtype,
quantized or not."""

from __future__ import annotations

import functools
import importlib.util
import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import torch

from llmft.config.hubs import MODELSCOPE_INSTALL, uses_modelscope
from llmft.data.templates import apply_template
from llmft.model.directories import is_reward_directory, model_dir_problem
from llmft.model.errors import ModelError
from llmft.model.quantization import PREQUANTIZED, check_prequantized_checkpoint
from llmft.model.tiny import ensure_tiny_model

logger = logging.getLogger(__name__)

PRECISION_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
DTYPE_NAMES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}
# Tokenizer classes that mean "exactly the tokenizer.json saved here" (our tiny models, most
# fine-tuned exports); AutoTokenizer may swap them for a family class with other ids (qwen2).
GENERIC_TOKENIZER_CLASSES = ("TokenizersBackend", "PreTrainedTokenizerFast")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")


def resolve_model_path(model_cfg: Any) -> str:
    """Local directory or hub id of the base model; tiny models are built on first use.

    A tiny preset whose name_or_path was pointed at an existing directory (a trained run's model/)
    loads that directory: `model=tiny model.name_or_path=outputs/<run>/model` needs no `model.tiny=null`.
    """
    name = str(model_cfg.name_or_path)
    if model_cfg.tiny is not None and not Path(name).is_dir():
        _check_local_path(name)  # a mistyped directory is an error, not a reason to build the tiny model
        return str(ensure_tiny_model(model_cfg.tiny))
    if uses_modelscope(model_cfg.hub) and not Path(name).expanduser().exists():
        return modelscope_snapshot(name, model_cfg.revision)
    return name


@functools.cache  # tokenizer, model and memory estimate all ask; ModelScope is asked once
def modelscope_snapshot(model_id: str, revision: str | None) -> str:
    """A local copy of a ModelScope model (downloaded once into ModelScope's cache)."""
    try:
        import modelscope
    except ImportError:
        raise ImportError(
            f"model.hub=modelscope needs the modelscope package: {MODELSCOPE_INSTALL}"
        ) from None
    logger.info("downloading %s from ModelScope", model_id)
    return modelscope.snapshot_download(model_id, revision=revision)


def is_reward_model(model_cfg: Any) -> bool:
    """model.adapter_path (or, without one, the base model) is a reward model an rm run left."""
    adapter = Path(model_cfg.adapter_path or "")
    if model_cfg.adapter_path and (adapter / "adapter_config.json").is_file():
        return is_reward_directory(adapter)
    return is_reward_directory(Path(resolve_model_path(model_cfg)))


def _unreachable_model_error(name: str, err: Exception) -> ModelError:
    return ModelError(
        f"cannot load model.name_or_path={name!r}: it is not a local directory and the hub copy is "
        "not reachable or not cached. Go online (unset HF_HUB_OFFLINE), log in with `hf auth login` "
        "for gated models (and accept their licence on the hub), or set model.name_or_path to a "
        f"local directory. Cause: {err}"
    )


def _check_local_path(name: str) -> None:
    """A path-shaped name (hub ids are 'org/name') that does not exist is a typo, not a hub id (also checked
    at compose time; engines built straight from a config meet it here)."""
    if problem := model_dir_problem(name):
        raise ModelError(problem)


def _tokenizer_source(model_cfg: Any, model_path: str) -> str:
    """An adapter directory that carries a tokenizer wins: it holds the training-time chat template."""
    adapter = model_cfg.adapter_path
    if adapter and any((Path(adapter) / name).is_file() for name in TOKENIZER_FILES):
        return str(adapter)
    return model_path


def _saved_tokenizer_class(source: str) -> str | None:
    config_file = Path(source) / "tokenizer_config.json"
    if not config_file.is_file():
        return None
    return json.loads(config_file.read_text(encoding="utf-8")).get("tokenizer_class")


def load_tokenizer(model_cfg: Any, chat_template: str | None = None):
    """The model's tokenizer, with a pad token and right padding (training layout).

    `chat_template` (a named template's Jinja text) replaces the tokenizer's own when given.
    """
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    model_path = resolve_model_path(model_cfg)
    source = _tokenizer_source(model_cfg, model_path)
    _check_local_path(source)
    kwargs = {"revision": model_cfg.revision, "trust_remote_code": model_cfg.trust_remote_code}
    try:
        if _saved_tokenizer_class(source) in GENERIC_TOKENIZER_CLASSES:
            tokenizer = PreTrainedTokenizerFast.from_pretrained(source, revision=model_cfg.revision)
        else:
            tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
    except OSError as err:
        if Path(source).is_dir():
            raise
        raise _unreachable_model_error(str(model_cfg.name_or_path), err) from err

    if chat_template is not None:
        tokenizer.chat_template = chat_template
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    return tokenizer


def chat_tokenizer(model_cfg: Any) -> Any:
    """The model's tokenizer with model.template applied (None keeps the tokenizer's own template): what
    training, inference, reward scoring and export all render conversations with."""
    tokenizer = load_tokenizer(model_cfg)
    apply_template(tokenizer, model_cfg.template)
    return tokenizer


def resolve_device(hardware_cfg: Any) -> str:
    """'cuda' or 'cpu'."""
    device = hardware_cfg.device
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            "hardware.device=cuda but no CUDA GPU is visible; use hardware=cpu or hardware=auto"
        )
    return device


def resolve_precision(hardware_cfg: Any) -> str:
    """'fp32', 'bf16' or 'fp16' for this device; auto picks the fastest safe one."""
    device = resolve_device(hardware_cfg)
    precision = hardware_cfg.precision
    bf16_ok = device == "cpu" or torch.cuda.is_bf16_supported()
    if precision == "auto":
        if device == "cpu":
            return "fp32"
        return "bf16" if bf16_ok else "fp16"
    if precision == "fp16" and device == "cpu":
        raise ValueError("hardware.precision=fp16 needs a CUDA GPU; on the CPU use fp32 or bf16")
    if precision == "bf16" and not bf16_ok:
        raise ValueError("hardware.precision=bf16 is not supported by this GPU; use fp16 or fp32")
    return precision


def resolve_dtype(model_cfg: Any, hardware_cfg: Any) -> torch.dtype:
    """Weight dtype: the preset's explicit dtype, or the run's precision when 'auto'."""
    if model_cfg.dtype == "auto":
        return PRECISION_DTYPES[resolve_precision(hardware_cfg)]
    dtype = DTYPE_NAMES[model_cfg.dtype]
    if (
        dtype == torch.bfloat16
        and resolve_device(hardware_cfg) == "cuda"
        and not torch.cuda.is_bf16_supported()
    ):
        logger.warning("model.dtype=bfloat16 is not supported by this GPU; loading in float16")
        return torch.float16
    return dtype


def _attn_implementation(requested: str, device: str, for_training: bool) -> str:
    if (
        requested == "sdpa" and for_training
    ):  # the same attention, without dense masks for padding-free batches
        from llmft.model.attention import VARLEN_SDPA  # importing it registers it with transformers

        return VARLEN_SDPA
    if requested.startswith("flash_attention"):
        if device != "cuda" or importlib.util.find_spec("flash_attn") is None:
            logger.warning("%s needs a CUDA GPU and the flash_attn package; using sdpa", requested)
            return "sdpa"
    return requested


def _local_cuda_device() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def _quantization_config(quant_cfg: Any, dtype: torch.dtype):
    from transformers import BitsAndBytesConfig

    if quant_cfg.method == "bnb_8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    compute_dtype = dtype if quant_cfg.compute_dtype == "auto" else DTYPE_NAMES[quant_cfg.compute_dtype]
    return BitsAndBytesConfig(  # bnb_4bit
        load_in_4bit=True,
        bnb_4bit_quant_type=quant_cfg.quant_type,
        bnb_4bit_use_double_quant=quant_cfg.double_quant,
        bnb_4bit_compute_dtype=compute_dtype,
    )


def load_model_config(model_cfg: Any) -> Any:
    """The model's config.json (no weights): what the model is, known in a fraction of a second."""
    from transformers import AutoConfig

    path = resolve_model_path(model_cfg)
    _check_local_path(path)
    return AutoConfig.from_pretrained(
        path, revision=model_cfg.revision, trust_remote_code=model_cfg.trust_remote_code
    )


def is_quantized(cfg: Any) -> bool:
    return cfg.quantization.method != "none"


# What sits on top of the decoder: the language-model head, or a one-output score head (reward models).
HEADS = ("causal_lm", "sequence_classification")


def _model_class(head: str):
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    if head not in HEADS:
        raise ValueError(f"head={head!r} is not one of: {', '.join(HEADS)}")
    return AutoModelForCausalLM if head == "causal_lm" else AutoModelForSequenceClassification


def _quiet_library_deprecations() -> None:
    """For the rest of the process: PEFT and TRL read transformers' deprecated `is_gradient_checkpointing`
    whenever they wrap or score a model; that FutureWarning is theirs to fix, not the user's to read on
    every run."""
    warnings.filterwarnings(
        "ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning
    )


def load_model(
    cfg: Any,
    tokenizer,
    *,
    for_training: bool = True,
    head: str = "causal_lm",
    dtype: Any = None,
    device_map: Any = None,
):
    """The base model of the composed config `cfg` (model, quantization, hardware groups).

    head="sequence_classification" puts a one-output score head on the decoder (a reward model; the head
    is new unless the checkpoint has one) and tells it the pad token, which it needs to find each
    sequence's last token. Training: weights stay on the CPU for the trainer to place (quantized ones go
    straight to their device), use_cache off. Inference: placed on the device, in eval mode, with
    model.adapter_path applied. dtype and device_map (export: task.export_dtype, task.export_device)
    replace those of cfg.model and cfg.hardware.
    """
    _quiet_library_deprecations()
    model_class = _model_class(head)

    model_cfg = cfg.model
    device = resolve_device(cfg.hardware)
    dtype = dtype or resolve_dtype(model_cfg, cfg.hardware)
    kwargs: dict[str, Any] = {
        "dtype": dtype,
        "attn_implementation": _attn_implementation(model_cfg.attn_implementation, device, for_training),
        "revision": model_cfg.revision,
        "trust_remote_code": model_cfg.trust_remote_code,
    }
    device_map = device_map or ("cpu" if device == "cpu" else {"": _local_cuda_device()})
    if cfg.quantization.method in PREQUANTIZED:  # the checkpoint carries its own quantization_config
        check_prequantized_checkpoint(
            cfg.quantization.method,
            resolve_model_path(model_cfg),
            model_cfg.revision,
            model_cfg.trust_remote_code,
        )
        kwargs["device_map"] = device_map
    elif is_quantized(cfg):
        kwargs["quantization_config"] = _quantization_config(cfg.quantization, dtype)
        kwargs["device_map"] = device_map
    elif not for_training:
        kwargs["device_map"] = device_map

    path = resolve_model_path(model_cfg)
    _check_local_path(path)
    if head == "sequence_classification":
        kwargs["num_labels"] = 1
    try:
        model = model_class.from_pretrained(path, **kwargs)
    except OSError as err:
        if Path(path).is_dir():
            raise
        raise _unreachable_model_error(str(model_cfg.name_or_path), err) from err

    if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(len(tokenizer))
    if head == "sequence_classification":
        model.config.pad_token_id = tokenizer.pad_token_id
    if for_training:
        model.config.use_cache = False
        return model

    if model_cfg.adapter_path:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, model_cfg.adapter_path)
    return model.eval()
