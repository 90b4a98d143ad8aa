"""Tokenise canonical rows and mask the labels, for any prefix-stable chat template.

Assistant tokens are found without template-specific markers: rendering the turns before an
assistant reply with add_generation_prompt=True gives the text up to where the reply starts;
rendering through the reply gives where it ends. Those character spans in the full rendering
are mapped to tokens with the tokenizer's offsets.
"""

from __future__ import annotations

import json
from typing import Any

from llmft.data.errors import DataError

IGNORE_INDEX = -100  # label value the loss skips

Encoded = dict[str, list[int]]


def _render(
    tokenizer: Any, messages: list[dict[str, str]], tools: list | None, add_generation_prompt: bool
) -> str:
    return tokenizer.apply_chat_template(
        messages, tools=tools, tokenize=False, add_generation_prompt=add_generation_prompt
    )


def _not_prefix_stable(tokenizer: Any, shorter: str, longer: str) -> DataError:
    differ = next((i for i, (a, b) in enumerate(zip(shorter, longer, strict=False)) if a != b), len(shorter))
    context = max(0, differ - 20)
    return DataError(
        f"the chat template of '{tokenizer.name_or_path}' is not prefix-stable: rendering fewer turns is not a "
        f"prefix of rendering more ({shorter[context : differ + 20]!r} became {longer[context : differ + 20]!r}), "
        "so assistant tokens cannot be located. Fix: choose a template with model.template (one of "
        "llmft.data.templates.TEMPLATES)."
    )


def assistant_spans(tokenizer: Any, row: dict[str, Any]) -> tuple[str, list[tuple[int, int]]]:
    """The full rendered text and the character span of each assistant reply (with its end-of-turn token)."""
    messages = ([{"role": "system", "content": row["system"]}] if row["system"] else []) + [
        {"role": m["role"], "content": m["content"]} for m in row["messages"]
    ]
    tools = json.loads(row["tools"]) if row["tools"] else None
    full = _render(tokenizer, messages, tools, add_generation_prompt=False)
    spans = []
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prompt = _render(tokenizer, messages[:index], tools, add_generation_prompt=True)
        through_reply = _render(tokenizer, messages[: index + 1], tools, add_generation_prompt=False)
        for shorter, longer in ((prompt, through_reply), (through_reply, full)):
            if not longer.startswith(shorter):
                raise _not_prefix_stable(tokenizer, shorter, longer)
        # Whitespace after the end-of-turn token belongs to the layout, not to the reply.
        spans.append((len(prompt), len(through_reply.rstrip())))
    return full, spans


def _token_range(offsets: list[tuple[int, int]], span: tuple[int, int]) -> tuple[int, int]:
    """Indices [first, last) of the tokens overlapping a character span."""
    start, end = span
    inside = [i for i, (a, b) in enumerate(offsets) if a < end and max(b, a + 1) > start]
    return (inside[0], inside[-1] + 1) if inside else (0, 0)


def _window(length: int, last_reply: tuple[int, int], cutoff_len: int) -> tuple[int, int]:
    """Which cutoff_len tokens to keep: all of them up to the last reply if they fit; otherwise keep the
    reply (its start at least) and as much of the prompt just before it as fits, cutting the prompt on
    the left. The prompt keeps half the window when the reply alone is longer than that."""
    if length <= cutoff_len:
        return 0, length
    reply_start, reply_end = last_reply
    if reply_end <= cutoff_len:
        return 0, cutoff_len
    prompt_kept = min(reply_start, max(cutoff_len - (reply_end - reply_start), cutoff_len // 2))
    start = reply_start - prompt_kept
    return start, start + cutoff_len


def encode_conversation(
    tokenizer: Any,
    row: dict[str, Any],
    cutoff_len: int,
    train_on_prompt: bool = False,
    mask_history: bool = False,
) -> Encoded | None:
    """input_ids, attention_mask and labels of one canonical conversation ending with an assistant reply.

    Labels are IGNORE_INDEX except on assistant replies (only the last one with mask_history; every
    token with train_on_prompt). None when no trainable token survives (the caller counts those).
    """
    if row["chosen"] is not None or not row["messages"] or row["messages"][-1]["role"] != "assistant":
        raise DataError(
            "encode_conversation needs a conversation ending with an assistant reply (an SFT row)."
        )
    if not tokenizer.is_fast:
        raise DataError(
            f"'{tokenizer.name_or_path}' has a Python tokenizer without character offsets, which masking needs. "
            "Fix: load its fast (tokenizers) version."
        )
    text, spans = assistant_spans(tokenizer, row)
    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    input_ids, offsets = encoding["input_ids"], encoding["offset_mapping"]
    token_spans = [_token_range(offsets, span) for span in spans]
    trained = [(0, len(input_ids))] if train_on_prompt else token_spans[-1:] if mask_history else token_spans
    labels = [IGNORE_INDEX] * len(input_ids)
    for first, last in trained:
        labels[first:last] = input_ids[first:last]
    start, end = _window(len(input_ids), token_spans[-1], cutoff_len)
    input_ids, labels = input_ids[start:end], labels[start:end]
    if all(label == IGNORE_INDEX for label in labels):
        return None
    return {"input_ids": input_ids, "attention_mask": [1] * len(input_ids), "labels": labels}


def encode_text(tokenizer: Any, text: str, cutoff_len: int) -> Encoded:
    """A pre-training sample: bos + text + eos (where the tokenizer has them), every token trained."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    input_ids = (bos + ids + eos)[:cutoff_len]
    return {"input_ids": input_ids, "attention_mask": [1] * len(input_ids), "labels": list(input_ids)}
