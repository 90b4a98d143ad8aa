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
    stages.stage_data,
    stages.online_rl,
)


def validate(cfg: DictConfig, data_problems: Sequence[str] = ()) -> None:
    """Raise ConfigError listing every problem found in the composed config.

    data_problems: what the data layer found (llmft.data.sources.check_data_settings: dataset files,
    formats, the chat template are its knowledge; this layer only gathers them into the one report).
    """
    problems = [problem for check in CHECKS for problem in check(cfg)] + list(data_problems)
    if len(problems) == 1:
        raise ConfigError(problems[0])
    if problems:
        raise ConfigError("\n  - ".join(["the composed config is invalid:", *problems]), problems)
