"""Helpers every check module shares."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence

from llmft.config.errors import did_you_mean


def choice_problem(key: str, value: object, allowed: tuple[str, ...]) -> str | None:
    if value in allowed:
        return None
    return f"{key}={value!r} is not one of: {', '.join(allowed)}.{did_you_mean(str(value), allowed)}"


def missing_packages(packages: Sequence[str]) -> list[str]:
    return [package for package in packages if importlib.util.find_spec(package) is None]
