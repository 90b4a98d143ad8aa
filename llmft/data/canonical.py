"""The canonical row: the one structure every dataset format converts to, early.

Templates, masking, tokenisation and (later) preference encoders read only this form::

    {
        "system":   str,             # system prompt, "" when absent
        "tools":    str,             # JSON list of tool (function) specs, "" when absent
        "messages": [{"role": "user" | "assistant" | "tool", "content": str}, ...],
        "chosen":   str | None,      # ranking rows: the preferred assistant reply
        "rejected": str | None,      # ranking rows: the dispreferred assistant reply
        "kto_tag":  bool | None,     # KTO rows: is the final assistant reply desirable?
        "text":     str | None,      # plain-text rows (formatting: text)
    }

Row kinds:
- SFT: messages start with a user turn and alternate a user-side turn (user, or tool for a
  function result) with an assistant turn (which may hold a function call); the last is assistant.
- ranking: the same, but the last turn is user-side; chosen/rejected are the two candidate replies.
- KTO: an SFT row with kto_tag set.
- text: messages [] and text set.
"""

from __future__ import annotations

from typing import Any

from llmft.data.errors import DataError

CANONICAL_KEYS = ("system", "tools", "messages", "chosen", "rejected", "kto_tag", "text")
ROLES = ("user", "assistant", "tool")
USER_SIDE_ROLES = ("user", "tool")


def conversation_row(
    messages: list[dict[str, str]],
    *,
    system: str = "",
    tools: str = "",
    chosen: str | None = None,
    rejected: str | None = None,
    kto_tag: bool | None = None,
    column: str = "messages",
) -> dict[str, Any]:
    """A canonical conversation row, checked; `column` names the source column in errors."""
    check_messages(messages, ends_with_user=chosen is not None, column=column)
    return {
        "system": system,
        "tools": tools,
        "messages": messages,
        "chosen": chosen,
        "rejected": rejected,
        "kto_tag": kto_tag,
        "text": None,
    }


def text_row(text: str) -> dict[str, Any]:
    return {
        "system": "",
        "tools": "",
        "messages": [],
        "chosen": None,
        "rejected": None,
        "kto_tag": None,
        "text": text,
    }


def check_messages(messages: list[dict[str, str]], *, ends_with_user: bool, column: str) -> None:
    """Raise DataError unless the turns alternate user-side / assistant and end as the row kind needs."""
    if not messages:
        raise DataError(f"column '{column}': no turns. Fix: give at least one user turn and one reply.")
    for position, message in enumerate(messages):
        role, content = message["role"], message["content"]
        if role not in ROLES:
            raise DataError(
                f"column '{column}', turn {position}: unknown role {role!r} (expected one of {ROLES})."
            )
        if not isinstance(content, str) or not content.strip():
            raise DataError(
                f"column '{column}', turn {position} ({role}): missing or empty content. Fix: fill it or drop the row."
            )
        expected_user_side = position % 2 == 0
        if (role in USER_SIDE_ROLES) != expected_user_side:
            wanted = "a user (or tool) turn" if expected_user_side else "an assistant turn"
            raise DataError(
                f"column '{column}', turn {position}: expected {wanted}, got {role!r}. "
                "Fix: turns must start with the user and alternate user / assistant."
            )
    if messages[0]["role"] != "user":
        raise DataError(f"column '{column}': the first turn must be the user's, got {messages[0]['role']!r}.")
    last_is_user_side = messages[-1]["role"] in USER_SIDE_ROLES
    if last_is_user_side != ends_with_user:
        wanted = (
            "a user turn (the replies are in chosen/rejected)" if ends_with_user else "an assistant reply"
        )
        raise DataError(f"column '{column}': the conversation must end with {wanted}.")


def prompt_and_reply(row: dict[str, Any]) -> tuple[list[dict[str, str]], str | None]:
    """The turns a model answers (system first) and the reply that answered them: a ranking row's chosen
    reply, else the final assistant turn; None when there is none (a text row). Online RL, preference
    training and task=predict all read a row this way."""
    turns = [{"role": m["role"], "content": m["content"]} for m in row["messages"]]
    system = [{"role": "system", "content": row["system"]}] if row["system"] else []
    if row["chosen"] is not None:
        return system + turns, row["chosen"]
    if turns and turns[-1]["role"] == "assistant":
        return system + turns[:-1], turns[-1]["content"]
    return system + turns, None
