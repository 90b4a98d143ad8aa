"""Helpers every check module shares."""

from __future__ import annotations

from llmft.config.errors import did_you_mean


def choice_problem(key: str, value: object, allowed: tuple[str, ...]) -> str | None:
    if value in allowed:
        return None
    return f"{key}={value!r} is not one of: {', '.join(allowed)}.{did_you_mean(str(value), allowed)}"
