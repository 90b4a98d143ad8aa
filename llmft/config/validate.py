"""Checks the schema's types cannot express: allowed choices, impossible combinations, missing files.

Runs right after composition, before torch is imported, and reports every problem at once.
"""

from __future__ import annotations

from collections.abc import Sequence

from omegaconf import DictConfig

from llmft.config.checks import (
    basics,
    evaluation,
    export,
    hardware,
    pipeline,
    quantization,
    serving,
    stages,
    tracking,
)
from llmft.config.errors import ConfigError

CHECKS = (
    basics.unknown_top_level,
    basics.choices,
    basics.combinations,
    basics.dataset_selected,
    serving.generation,
    tracking.logger,
    hardware.distributed_setup,
    quantization.quantization,
    quantization.lora_variants,
    export.export,
    evaluation.evaluation,
    pipeline.pipeline,
    stages.stage_data,
    stages.online_rl,
)


def validate(cfg: DictConfig, file_problems: Sequence[str] = ()) -> None:
    """Raise ConfigError listing every problem found in the composed config.

    file_problems: what llmft.data.sources.check_dataset_files and llmft.evaluate.suites.layout_problems
    found (dataset formats and benchmark layouts are those layers' knowledge; this one only gathers them
    into the one report).
    """
    problems = [problem for check in CHECKS for problem in check(cfg)] + list(file_problems)
    if problems:
        raise ConfigError("\n  - ".join(["the composed config is invalid:", *problems]))
