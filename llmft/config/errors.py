"""Turn composition failures into messages that name the key, its group and the nearest valid names.

Hydra and OmegaConf already detect a misspelled key, a wrong type or an unknown option; their
messages just do not say what was meant. `explain_config_errors` lets those exceptions reach us
(HYDRA_FULL_ERROR) and prints one short, actionable message instead of a traceback.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import os
import re
import sys
import types
import typing
from collections.abc import Iterator, Sequence

from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
from omegaconf.errors import OmegaConfBaseException

from llmft.config.schema import LlmftConfig


class ReportedError(Exception):
    """An error whose message says what went wrong and how to fix it: printed without a traceback."""

    label = "error"
    exit_code = 1


class ConfigError(ReportedError, ValueError):
    """An invalid or impossible configuration, detected before any heavy work; `problems` lists each
    problem on its own (the board shows each next to its field)."""

    label = "config error"
    exit_code = 2

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems) or [message]


def did_you_mean(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=3, cutoff=0.6)
    return f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def _without_none(tp: typing.Any) -> typing.Any:
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return args[0] if typing.get_origin(tp) in (typing.Union, types.UnionType) and len(args) == 1 else tp


def schema_keys(dotted_parent: str) -> list[str]:
    """Field names the schema allows under a dotted path ('' is the root; 'dataset.x' is a DatasetConfig)."""
    node: typing.Any = LlmftConfig
    for part in filter(None, dotted_parent.split(".")):
        if typing.get_origin(node) is dict:  # a free-form key such as a dataset name: step into the values
            node = typing.get_args(node)[1]
        elif dataclasses.is_dataclass(node):
            node = _without_none(typing.get_type_hints(node).get(part))
        else:
            return []
    return [f.name for f in dataclasses.fields(node)] if dataclasses.is_dataclass(node) else []


def _unknown_key_message(full_key: str, where: str) -> str:
    parent, _, key = full_key.rpartition(".")
    valid = schema_keys(parent)
    group = parent.split(".")[0] if parent else "the top level"
    return (
        f"Unknown config key '{full_key}' ({where}group '{group}').{did_you_mean(key, valid)}\n"
        f"Valid keys there: {', '.join(valid)}"
    )


def explain(exc: BaseException) -> str | None:
    """One readable message for a config failure, or None when it is not one."""
    if isinstance(exc, MissingConfigException) and exc.options is not None:
        group, _, option = (exc.missing_cfg_file or "").rpartition("/")
        return (
            f"Unknown option '{option}' for config group '{group}'.{did_you_mean(option, exc.options)}\n"
            f"Available: {', '.join(exc.options)}"
        )
    if isinstance(exc, OverrideParseException):
        return f"Could not parse the command line: {exc}"
    if not isinstance(exc, ConfigCompositionException | OmegaConfBaseException | MissingConfigException):
        return None
    text = "\n".join(str(e) for e in (exc, exc.__cause__) if e is not None)
    source = re.search(r"In '([^']+)'", text)
    where = f"in conf/{source.group(1)}.yaml, " if source else ""
    full_key = re.search(r"full_key: (\S+)", text)
    if re.search(r"Key '[^']+' (is )?not in", text) and full_key:
        return _unknown_key_message(full_key.group(1), where)
    bad_value = re.search(r"Value '(.*)' of type '(\w+)' could not be converted to (\w+)", text)
    if bad_value and full_key:
        value, _, wanted = bad_value.groups()
        source_note = f" ({where.rstrip(', ')})" if where else ""
        return f"Config key '{full_key.group(1)}'{source_note} expects {wanted.lower()}, got {value!r}."
    return text


@contextlib.contextmanager
def explain_config_errors() -> Iterator[None]:
    """Print config mistakes (and other ReportedErrors) as one clear message, a stopped run as one line;
    let every other error through."""
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")  # hand Hydra's exceptions to us instead of printing them
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - re-raised below unless it is a config error
        if isinstance(exc, ReportedError):
            label, message, exit_code = exc.label, str(exc), exc.exit_code
        elif (message := explain(exc)) is not None:
            label, exit_code = ConfigError.label, ConfigError.exit_code
        else:
            raise
        sys.stderr.write(f"llmft: {label}: {message}\n")
        sys.exit(exit_code)
    except KeyboardInterrupt as stop:  # Ctrl-C, or a stop request (llmft.train.preemption.RunStopped)
        sys.stderr.write(f"llmft: stopped: {stop or 'interrupted'}\n")
        sys.exit(130)
