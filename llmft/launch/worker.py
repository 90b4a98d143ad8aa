"""`python -m llmft.launch.worker <run_dir>`: one torchrun process.

It does not parse the command line again (every rank would make its own run dir): it loads the
config the parent composed, validated and saved in <run_dir>/.hydra/, and runs the task there.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from llmft.config.schema import LlmftConfig
from llmft.launch.torchrun import SAVED_CONFIG, write_objective
from llmft.launch.world import rank

HYDRA_RECORD = Path(".hydra") / "hydra.yaml"


def load_saved_config(run_dir: Path) -> DictConfig:
    """The parent's composed config, typed by the schema; Hydra's record of the job made current.

    With HydraConfig set, code asking Hydra about its job (sweep membership, overrides) gets the same
    answers as in the parent.
    """
    cfg = OmegaConf.merge(OmegaConf.structured(LlmftConfig), OmegaConf.load(run_dir / SAVED_CONFIG))
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
    logging.basicConfig(
        level=logging.INFO if rank() == 0 else logging.WARNING,
        format=f"[rank {rank()}] %(asctime)s %(name)s %(levelname)s: %(message)s",
    )
    from llmft.main import run

    value = run(load_saved_config(run_dir), run_dir=run_dir)
    if rank() == 0:
        write_objective(run_dir, value)


if __name__ == "__main__":
    main(sys.argv[1:])
