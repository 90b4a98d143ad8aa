"""Downloads from ModelScope need its package: say so before anything loads."""

from __future__ import annotations

from omegaconf import DictConfig

from llmft.config.hubs import MODELSCOPE_INSTALL, uses_modelscope
from llmft.config.paths import is_local_dataset, resolve_local_path
from llmft.model.optional import missing_packages


def modelscope_ids(cfg: DictConfig) -> list[str]:
    """The config keys whose id will be downloaded from ModelScope (local paths and tiny models are not)."""
    model = cfg.model
    keys = []
    if model.tiny is None and resolve_local_path(model.name_or_path) is None and uses_modelscope(model.hub):
        keys.append("model.name_or_path")
    for name, entry in cfg.dataset.items():
        if not is_local_dataset(entry.path, entry.source) and uses_modelscope(entry.hub):
            keys.append(f"dataset.{name}")
    return keys


def modelscope_package(cfg: DictConfig) -> list[str]:
    keys = modelscope_ids(cfg)
    if not keys or not missing_packages(["modelscope"]):
        return []
    return [
        f"{', '.join(keys)} download from ModelScope (USE_MODELSCOPE_HUB=1 or hub: modelscope), which needs "
        f"the modelscope package: {MODELSCOPE_INSTALL}; or use hub=huggingface."
    ]
