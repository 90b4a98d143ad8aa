"""Response bodies in OpenAI's shapes: whole completions, stream chunks, usage, server-sent events."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from llmft.infer.engine import Completion


def sse_event(payload: dict[str, Any] | str) -> str:
    return f"data: {payload if isinstance(payload, str) else json.dumps(payload)}\n\n"


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


class Reply:
    """Response bodies of one chat or text completion request, in OpenAI's shapes."""

    def __init__(self, chat: bool, model: str, include_usage: bool = False):
        self.chat, self.model, self.include_usage = chat, model, include_usage
        self.id = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}"
        self.created = int(time.time())

    def _envelope(self, choices: list[dict[str, Any]], chunk: bool) -> dict[str, Any]:
        kind = ("chat.completion.chunk" if chunk else "chat.completion") if self.chat else "text_completion"
        return {
            "id": self.id,
            "object": kind,
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }

    def choice(self, index: int, completion: Completion) -> dict[str, Any]:
        body = (
            {"message": {"role": "assistant", "content": completion.text}}
            if self.chat
            else {"text": completion.text}
        )
        return {"index": index, **body, "finish_reason": completion.finish_reason, "logprobs": None}

    def whole(self, completions: list[Completion], prompt_tokens: int) -> dict[str, Any]:
        body = self._envelope([self.choice(i, c) for i, c in enumerate(completions)], chunk=False)
        return {**body, "usage": usage(prompt_tokens, sum(c.completion_tokens for c in completions))}

    def chunk(
        self, index: int, text: str | None = None, finish_reason: str | None = None, opening: bool = False
    ) -> dict[str, Any]:
        if self.chat:
            delta = (
                {"role": "assistant", "content": ""} if opening else {} if text is None else {"content": text}
            )
            choice = {"index": index, "delta": delta}
        else:
            choice = {"index": index, "text": text or ""}
        body = self._envelope([{**choice, "finish_reason": finish_reason, "logprobs": None}], chunk=True)
        return {**body, "usage": None} if self.include_usage else body

    def usage_chunk(self, prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
        return {**self._envelope([], chunk=True), "usage": usage(prompt_tokens, completion_tokens)}
