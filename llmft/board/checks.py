"""The Train tab's overrides through run.py's own compose-time checks; each problem goes to its field."""

from __future__ import annotations

import re
from collections.abc import Iterable

from omegaconf import DictConfig

from llmft.board.form import EXPERIMENT, EXTRA, GROUPS
from llmft.config.compose import compose
from llmft.config.errors import ConfigError, explain


def composed(overrides: list[str]) -> tuple[DictConfig | None, list[str]]:
    """(the config run.py would run, []) or (None or the config, every problem run.py would report)."""
    from llmft.main import check

    try:
        cfg = compose(overrides)
    except Exception as error:  # noqa: BLE001 - explained like run.py does, or re-raised
        message = explain(error)
        if message is None:
            raise
        return None, [message]
    try:
        check(cfg)
    except ConfigError as error:
        return cfg, error.problems
    return cfg, []


def field_of(problem: str, fields: Iterable[str], extra_keys: Iterable[str] = ()) -> str:
    """The form field a problem is about: a knob it names, else a key typed in the extra field, else a
    group it names, else the extra field."""

    def names(key: str) -> bool:
        return re.search(rf"(?<![\w.]){re.escape(key)}(?![\w])", problem) is not None

    knobs = sorted((f for f in fields if "." in f or f == "seed"), key=len, reverse=True)
    for key in knobs:
        if names(key):
            return key
    if any(names(key) or f"config group '{key}'" in problem for key in extra_keys):
        return EXTRA
    for group in (*GROUPS, EXPERIMENT):
        if f"config group '{group}'" in problem or re.search(rf"(?<![\w.]){group}[.=]", problem):
            return group
    return EXTRA


def problems_by_field(problems: list[str], fields: Iterable[str], extra: list[str] = ()) -> dict[str, str]:
    """{field: its problems}; extra: the overrides typed in the extra field (their problems stay there)."""
    fields = list(fields)
    extra_keys = [override.partition("=")[0].lstrip("+") for override in extra]
    by_field: dict[str, list[str]] = {}
    for problem in problems:
        by_field.setdefault(field_of(problem, fields, extra_keys), []).append(problem)
    return {name: "\n".join(found) for name, found in by_field.items()}
