"""The composed config as flat, secret-free `dotted.key -> text` pairs (MLflow params, summaries)."""

from __future__ import annotations

import json

from omegaconf import DictConfig, OmegaConf

from llmft.track.secrets import hide_env_values, redact_tree

MAX_PARAM_LENGTH = 6000  # MLflow's limit on a param value


def plain_config(cfg: DictConfig) -> dict:
    """The resolved config without Hydra's own node, secrets redacted (values read from the environment
    shown as their `${oc.env:VAR}` interpolation)."""
    tree = hide_env_values(OmegaConf.to_container(cfg, resolve=True), OmegaConf.to_container(cfg))
    tree.pop("hydra", None)
    return redact_tree(tree)


def flatten(tree: dict, prefix: str = "") -> dict[str, object]:
    """{'method': {'lora_rank': 8}} -> {'method.lora_rank': 8}; lists stay whole values."""
    flat: dict[str, object] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{dotted}."))
        else:
            flat[dotted] = value
    return flat


def as_text(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= MAX_PARAM_LENGTH else text[: MAX_PARAM_LENGTH - 3] + "..."


def config_params(cfg: DictConfig) -> dict[str, str]:
    """Every leaf of the composed config, e.g. {'method.learning_rate': '0.0002', 'task.api_key': '***'}."""
    return {key: as_text(value) for key, value in flatten(plain_config(cfg)).items()}
