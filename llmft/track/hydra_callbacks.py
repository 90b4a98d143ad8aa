"""Hydra callbacks (conf/config.yaml, hydra.callbacks): sweep tracking and secret-free Hydra records."""

from __future__ import annotations

import atexit
import itertools
import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from llmft.track.secrets import redact_tree

log = logging.getLogger(__name__)
HYDRA_RECORDS = ("config.yaml", "hydra.yaml", "overrides.yaml")


class SweepTracking(Callback):
    """Opens the MLflow parent run before a multirun; prints, saves and logs its summary after.

    Exits with status 1 after the summary when a job failed, as Hydra would have (without the summary).
    A sweep that stops early leaves its parent run FAILED, not RUNNING.
    """

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from llmft.track.sweep import fail_if_unfinished, start_sweep

        _make_optuna_storage_dir(config)
        start_sweep(config)
        atexit.register(fail_if_unfinished, config)  # on_multirun_end is skipped when the sweep stops early

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from llmft.track.sweep import SUMMARY_CSV, finish_sweep, sweep_dir

        rows = finish_sweep(config)
        failed = [row.name for row in rows if row.status != "FINISHED"]
        if failed:
            raise SystemExit(
                f"llmft: {len(failed)} of {len(rows)} jobs failed (job {', '.join(failed)}); "
                f"see {sweep_dir(config) / SUMMARY_CSV} and each job's log."
            )


def _make_optuna_storage_dir(config: DictConfig) -> None:
    """Optuna opens a sqlite storage before any job creates the folders; create its folder here."""
    storage = OmegaConf.select(config, "hydra.sweeper.storage")
    if isinstance(storage, str) and storage.startswith("sqlite:///"):
        Path(storage[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)


class RedactSecrets(Callback):
    """Rewrites Hydra's own records (.hydra/*.yaml, multirun.yaml) with keys, tokens and passwords as ***,
    and removes hydra-submitit-launcher's pickles once the sweep ended.

    Hydra saves the composed config and the command-line overrides verbatim before the job runs;
    a secret given as `task.api_key=...` would stay on disk. Pass secrets as `${oc.env:VAR}`
    (kept as written, it is not the secret itself) to keep such records replayable.
    """

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        remove_submitit_pickles(config)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        from hydra.core.hydra_config import HydraConfig

        hydra = HydraConfig.get()
        records = []
        if hydra.output_subdir is not None:
            records += [Path(hydra.runtime.output_dir) / hydra.output_subdir / name for name in HYDRA_RECORDS]
        if hydra.mode is not None and hydra.mode.name == "MULTIRUN":
            records.append(Path(hydra.runtime.cwd) / hydra.sweep.dir / "multirun.yaml")
        for path in records:
            if path.exists():
                redact_yaml_file(path)


def redact_yaml_file(path: Path) -> None:
    """Replace secrets in a YAML file in place, leaving interpolations unresolved."""
    original = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    redacted = redact_tree(original)
    if redacted != original:
        OmegaConf.save(OmegaConf.create(redacted), path)
        log.debug("Redacted secrets in %s", path)


def remove_submitit_pickles(config: DictConfig) -> None:
    """hydra-submitit-launcher pickles each job's overrides to start (and requeue) it, and its config with
    its result to hand back: secrets included. Once the sweep ended they have served; its logs stay."""
    folder = OmegaConf.select(config, "hydra.launcher.submitit_folder")  # e.g. <sweep dir>/.submitit/%j
    above_job_dirs = list(itertools.takewhile(lambda part: "%" not in part, Path(folder or "").parts))
    if not above_job_dirs:
        return
    root = Path(*above_job_dirs)
    for pickle in [*root.rglob("*_submitted.pkl"), *root.rglob("*_result.pkl")]:
        pickle.unlink()
