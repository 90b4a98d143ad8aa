"""Checks the schema's types cannot express: allowed choices, impossible combinations, missing files.

Runs right after composition, before torch is imported, and reports every problem at once. The data
and evaluate layers check what only they know (dataset files and formats, the chat template, benchmark
files); they are run here too, so one report holds every problem.
"""

from __future__ import annotations

import logging

from omegaconf import DictConfig

from llmft.checks import (
    basics,
    evaluation,
    export,
    hardware,
    hubs,
    models,
    pipeline,
    quantization,
    ranges,
    serving,
    stages,
    tracking,
)
from llmft.config.errors import ConfigError
from llmft.data.sources import check_data_settings
from llmft.evaluate.suites import layout_problems

log = logging.getLogger(__name__)
CHECKS = (
    basics.unknown_top_level,
    basics.choices,
    basics.combinations,
    basics.dataset_selected,
    ranges.ranges,
    models.model_paths,
    models.kernels,
    serving.generation,
    serving.board,
    tracking.logger,
    hubs.modelscope_package,
    hardware.distributed_setup,
    quantization.quantization,
    quantization.lora_variants,
    export.export,
    evaluation.evaluation,
    pipeline.pipeline,
    stages.stage_data,
    stages.online_rl,
    stages.batch_passes,
    check_data_settings,
    lambda cfg: layout_problems(cfg.task),
)


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError listing every problem found in the composed config; warn of settings the run
    will ignore."""
    for warning in stages.ignored_knobs(cfg):
        log.warning(warning)
    problems = [problem for check in CHECKS for problem in check(cfg)]
    if len(problems) == 1:
        raise ConfigError(problems[0])
    if problems:
        raise ConfigError("\n  - ".join(["the composed config is invalid:", *problems]), problems)
