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

CHECKS = (
    basics.unknown_top_level,
    basics.choices,
    basics.combinations,
    basics.dataset_selected,
    ranges.ranges,
    models.model_paths,
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
)


def validate(cfg: DictConfig, data_problems: Sequence[str] = ()) -> None:
    """Raise ConfigError listing every problem found in the composed config.

    data_problems: what the data and evaluate layers found (llmft.data.sources.check_data_settings:
    dataset files, formats and the chat template; llmft.evaluate.suites.layout_problems: benchmark
    files); those are their knowledge, this layer only gathers them into the one report.
    """
    problems = [problem for check in CHECKS for problem in check(cfg)] + list(data_problems)
    if len(problems) == 1:
        raise ConfigError(problems[0])
    if problems:
        raise ConfigError("\n  - ".join(["the composed config is invalid:", *problems]), problems)
