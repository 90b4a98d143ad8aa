"""Converters from each dataset formatting to the canonical row (see llmft.data.canonical).

The semantics follow LLaMA-Factory's dataset_info.json: `alpaca` (instruction / input / output,
optional history, system, tools, chosen/rejected for ranking, a KTO tag), `sharegpt` (a list of
{from, value} turns with configurable role tags), `openai` (a list of {role, content}) and `text`.
A converter raises DataError naming the column and the fix; the loader adds dataset and row.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from llmft.config.schema import DatasetConfig, RoleTags
from llmft.data.canonical import conversation_row, text_row
from llmft.data.errors import DataError

Row = Mapping[str, Any]

# OpenAI rows are sharegpt rows with fixed tags.
OPENAI_TAGS = RoleTags(
    role_tag="role",
    content_tag="content",
    user_tag="user",
    assistant_tag="assistant",
    observation_tag="tool",
    function_tag="function_call",
    system_tag="system",
)


def _text(row: Row, column: str, *, required: bool = True) -> str:
    """The string in `column`; "" for an absent optional value."""
    value = row.get(column)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise DataError(f"column '{column}': missing or empty. Fix: fill it, or drop the row.")
        return ""
    if not isinstance(value, str):
        raise DataError(f"column '{column}': expected text, got {type(value).__name__} ({value!r:.60}).")
    return value


def _tools(row: Row, column: str | None) -> str:
    """Tool specs as a JSON string; a list (or a JSON string of one) is accepted."""
    if column is None or row.get(column) in (None, "", []):
        return ""
    value = row[column]
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"column '{column}': not valid JSON ({exc}). Fix: a JSON list of tool specs."
            ) from None
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise DataError(f"column '{column}': expected a list of tool specs, got {type(value).__name__}.")
    return json.dumps(value, ensure_ascii=False)


def _kto_tag(row: Row, column: str | None) -> bool | None:
    if column is None:
        return None
    value = row.get(column)
    if isinstance(value, bool):
        return value
    if value in (0, 1):
        return bool(value)
    raise DataError(f"column '{column}': expected true or false (the KTO label), got {value!r}.")


def _user(content: str) -> dict[str, str]:
    return {"role": "user", "content": content}


def _assistant(content: str) -> dict[str, str]:
    return {"role": "assistant", "content": content}


def _history(row: Row, column: str | None) -> list[dict[str, str]]:
    """Alpaca history: [[query, response], ...] before the current instruction."""
    if column is None or row.get(column) is None:
        return []
    if not isinstance(row[column], list):
        raise DataError(
            f"column '{column}': expected a list of [query, response] pairs, got {row[column]!r:.80}."
        )
    messages = []
    for index, pair in enumerate(row[column]):
        if (
            not isinstance(pair, list | tuple)
            or len(pair) != 2
            or not all(isinstance(p, str) and p for p in pair)
        ):
            raise DataError(
                f"column '{column}', item {index}: expected a [query, response] pair of texts, got {pair!r:.80}."
            )
        messages += [_user(pair[0]), _assistant(pair[1])]
    return messages


def convert_alpaca(row: Row, cfg: DatasetConfig) -> dict[str, Any]:
    cols = cfg.columns
    prompt = _text(row, cols.prompt)
    query = _text(row, cols.query, required=False)
    messages = [*_history(row, cols.history), _user(f"{prompt}\n{query}" if query else prompt)]
    system = _text(row, cols.system, required=False) if cols.system else ""
    tools = _tools(row, cols.tools)
    if cfg.ranking:
        return conversation_row(
            messages,
            system=system,
            tools=tools,
            chosen=_text(row, cols.chosen),
            rejected=_text(row, cols.rejected),
            column=cols.prompt,
        )
    messages.append(_assistant(_text(row, cols.response)))
    return conversation_row(
        messages, system=system, tools=tools, kto_tag=_kto_tag(row, cols.kto_tag), column=cols.prompt
    )


def _reply(row: Row, column: str, tags: RoleTags) -> str:
    """A ranking reply: a turn object ({from, value}) or a plain text."""
    value = row.get(column)
    if not isinstance(value, Mapping):
        return _text(row, column)
    try:
        return _text(value, tags.content_tag)
    except DataError:
        raise DataError(
            f"column '{column}': the reply has no '{tags.content_tag}' text. Fix: fill it."
        ) from None


def _convert_turns(row: Row, cfg: DatasetConfig, tags: RoleTags) -> dict[str, Any]:
    cols = cfg.columns
    turns = row.get(cols.messages)
    if not isinstance(turns, list):
        raise DataError(f"column '{cols.messages}': expected a list of turns, got {type(turns).__name__}.")
    roles = {
        tags.user_tag: "user",
        tags.observation_tag: "tool",
        tags.assistant_tag: "assistant",
        tags.function_tag: "assistant",  # a function call is the assistant's turn; its content is the call
    }
    system = _text(row, cols.system, required=False) if cols.system else ""
    messages = []
    for position, turn in enumerate(turns):
        if not isinstance(turn, Mapping) or turn.get(tags.role_tag) is None:
            raise DataError(
                f"column '{cols.messages}', turn {position}: expected an object with a '{tags.role_tag}' key, "
                f"got {turn!r:.80}. Fix: set the dataset's tags.role_tag / tags.content_tag."
            )
        tag, content = turn[tags.role_tag], turn.get(tags.content_tag)
        if position == 0 and tag == tags.system_tag:
            system = content or system
            continue
        if tag not in roles:
            raise DataError(
                f"column '{cols.messages}', turn {position}: unknown role {tag!r}; this dataset's tags are "
                f"{sorted(roles)} (system {tags.system_tag!r} only first). Fix: set the dataset's tags.*_tag."
            )
        messages.append({"role": roles[tag], "content": content})
    tools = _tools(row, cols.tools)
    if cfg.ranking:
        chosen, rejected = _reply(row, cols.chosen, tags), _reply(row, cols.rejected, tags)
        return conversation_row(
            messages, system=system, tools=tools, chosen=chosen, rejected=rejected, column=cols.messages
        )
    return conversation_row(
        messages, system=system, tools=tools, kto_tag=_kto_tag(row, cols.kto_tag), column=cols.messages
    )


def convert_sharegpt(row: Row, cfg: DatasetConfig) -> dict[str, Any]:
    return _convert_turns(row, cfg, cfg.tags)


def convert_openai(row: Row, cfg: DatasetConfig) -> dict[str, Any]:
    return _convert_turns(row, cfg, OPENAI_TAGS)


def convert_text(row: Row, cfg: DatasetConfig) -> dict[str, Any]:
    return text_row(_text(row, cfg.columns.text))


CONVERTERS: dict[str, Callable[[Row, DatasetConfig], dict[str, Any]]] = {
    "alpaca": convert_alpaca,
    "sharegpt": convert_sharegpt,
    "openai": convert_openai,
    "text": convert_text,
}


def to_canonical(row: Row, cfg: DatasetConfig) -> dict[str, Any]:
    """Convert one source row by the dataset's formatting."""
    try:
        convert = CONVERTERS[cfg.formatting]
    except KeyError:
        raise DataError(
            f"formatting {cfg.formatting!r} is unknown; choose one of: {', '.join(CONVERTERS)}."
        ) from None
    return convert(row, cfg)


def config_problems(cfg: DatasetConfig) -> list[str]:
    """What the entry itself gets wrong, before any file is read."""
    if cfg.formatting not in CONVERTERS:
        return [f"formatting {cfg.formatting!r} is unknown; choose one of: {', '.join(CONVERTERS)}"]
    if cfg.formatting == "text" and cfg.ranking:
        return ["ranking: true needs conversations, not formatting: text"]
    if cfg.ranking and not (cfg.columns.chosen and cfg.columns.rejected):
        return [
            "ranking: true needs columns.chosen and columns.rejected (the preferred and dispreferred replies)"
        ]
    return []


def required_columns(cfg: DatasetConfig) -> list[str]:
    """Source columns that must exist: the formatting's own plus every optional one the entry names."""
    cols = cfg.columns
    if cfg.formatting == "text":
        return [cols.text]
    main = [cols.prompt] if cfg.formatting == "alpaca" else [cols.messages]
    if cfg.formatting == "alpaca" and not cfg.ranking:
        main.append(cols.response)
    named = [cols.history, cols.system, cols.tools, cols.kto_tag]
    if cfg.ranking:
        named += [cols.chosen, cols.rejected]
    return main + [column for column in named if column]
