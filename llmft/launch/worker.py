"""`python -m llmft.launch.worker <run_dir>`: one torchrun process.

It does not parse the command line again (every rank would make its own run dir), nor check the config
again: it runs the task in <run_dir> on the config the parent composed and validated, which arrives in the environment
(LLMFT_WORKER_CONFIG; .hydra/config.yaml is the run's record, with secrets redacted).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from llmft.config.run_dir import HYDRA_DIR
from llmft.config.schema import LlmftConfig
from llmft.launch.dispatch import run_task
from llmft.launch.torchrun import WORKER_CONFIG_ENV, write_objective
from llmft.track.ranks import rank
from llmft.track.secrets import RedactingFilter

HYDRA_RECORD = Path(HYDRA_DIR) / "hydra.yaml"


def load_parent_config(run_dir: Path, config_yaml: str) -> DictConfig:
    """The parent's composed config, typed by the schema; Hydra's record of the job made current.

    With HydraConfig set, code asking Hydra about its job (sweep membership, overrides) gets the same
    answers as in the parent.
    """
    cfg = OmegaConf.merge(OmegaConf.structured(LlmftConfig), OmegaConf.create(config_yaml))
    record = run_dir / HYDRA_RECORD
    if record.exists():
        from hydra.conf import HydraConf
        from hydra.core.hydra_config import HydraConfig

        hydra = OmegaConf.structured(HydraConf)
        OmegaConf.set_struct(hydra, False)  # config groups such as hydra/env add keys HydraConf lacks
        hydra.merge_with(OmegaConf.load(record).hydra)
        HydraConfig.instance().set_config(OmegaConf.create({"hydra": hydra}))
    return cfg


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        raise SystemExit("usage: python -m llmft.launch.worker <run_dir>  (started by llmft, under torchrun)")
    run_dir = Path(argv[0])
    console = logging.StreamHandler()
    console.addFilter(RedactingFilter())
    logging.basicConfig(
        level=logging.INFO if rank() == 0 else logging.WARNING,
        format=f"[rank {rank()}] %(asctime)s %(name)s %(levelname)s: %(message)s",
        handlers=[console],
    )
    if WORKER_CONFIG_ENV not in os.environ:
        raise SystemExit(
            f"{WORKER_CONFIG_ENV} is not set: workers are started by `python run.py hardware=...`"
        )
    value = run_task(load_parent_config(run_dir, os.environ[WORKER_CONFIG_ENV]), run_dir)
    if rank() == 0:
        write_objective(run_dir, value)


if __name__ == "__main__":
    main(sys.argv[1:])
