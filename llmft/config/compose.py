"""Compose the config `python run.py <overrides>` would get, in this process (tens of milliseconds).

For tools that check or inspect commands before running them (the board); run.py itself composes
through @hydra.main.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from omegaconf import DictConfig

from llmft.config.paths import PROJECT_ROOT

CONF_DIR = PROJECT_ROOT / "conf"
_HYDRA = threading.Lock()  # Hydra's global state holds one composition at a time


def compose(overrides: Sequence[str] = (), with_hydra: bool = False) -> DictConfig:
    """Raises what run.py would report (Hydra's and OmegaConf's exceptions; see llmft.config.errors.explain).

    with_hydra: keep Hydra's own node (cfg.hydra: the groups' chosen options, run dirs, ...).
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from llmft.config import register_schema

    register_schema()
    with _HYDRA:
        GlobalHydra.instance().clear()  # also inside a Hydra app (task=board), whose own job is under way
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return hydra_compose(
                config_name="config", overrides=list(overrides), return_hydra_config=with_hydra
            )
