"""hardware.slurm.dry_run=true: print the sbatch script and the jobs a Slurm sweep would submit.

A Hydra callback (selected by conf/hardware/slurm.yaml) that runs before anything else of the
multirun: nothing is submitted, no sweep dir or tracking run is made.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"
SUBMITIT_ONLY_KEYS = ("_target_", "submitit_folder", "max_num_timeout")


class SlurmDryRun(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if not config.hardware.slurm.dry_run:
            return
        jobs = sweep_jobs(config)
        print(sbatch_script(config, max(len(jobs), 1)))
        if jobs:
            for number, overrides in enumerate(jobs):
                print(f"# job {number}: {' '.join(overrides)}")
        else:
            print(f"# jobs: chosen at run time by {config.hydra.sweeper._target_}")
        print(f"# max_num_timeout={config.hydra.launcher.max_num_timeout}; nothing was submitted (dry run).")
        raise SystemExit(0)


def sweep_jobs(config: DictConfig) -> list[list[str]]:
    """Each job's overrides, as the basic sweeper will expand them; empty for sweepers that search."""
    if config.hydra.sweeper._target_ != BASIC_SWEEPER:
        return []
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = OmegaConf.select(config, "hydra.sweeper.params") or {}
    arguments = [f"{key}={value}" for key, value in params.items()] + list(config.hydra.overrides.task)
    parsed = OverridesParser.create().parse_overrides(arguments)
    return [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]


def sbatch_script(config: DictConfig, jobs: int) -> str:
    """The script hydra-submitit-launcher will hand to sbatch for this sweep (submitit writes it)."""
    from submitit.slurm.slurm import SlurmExecutor, _convert_mem, _make_sbatch_string

    launcher = OmegaConf.to_container(config.hydra.launcher, resolve=True)
    folder = str(Path(launcher["submitit_folder"]).absolute())
    rename = SlurmExecutor._equivalence_dict()  # the launcher's generic names -> sbatch's
    parameters = {
        rename.get(key, key): value
        for key, value in launcher.items()
        if key not in SUBMITIT_ONLY_KEYS and value is not None
    }
    if "mem" in parameters:
        parameters["mem"] = _convert_mem(parameters["mem"])
    command = f"{shlex.quote(sys.executable)} -u -m submitit.core._submit {shlex.quote(folder)}"
    return _make_sbatch_string(
        command=command, folder=folder, map_count=jobs if jobs > 1 else None, **parameters
    )
