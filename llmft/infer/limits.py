"""Server guards: a request-body size cap and an admission queue in front of the engine."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from llmft.infer.api_errors import ServerBusy, error_body


class BodySizeLimit:
    """ASGI middleware: a request body over `max_bytes` gets 413 before the app parses it."""

    def __init__(self, app: Any, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                return await self._too_large(send)
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if replayed:  # after the body, only a disconnect can come (StreamingResponse listens for it)
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        return await self.app(scope, replay, send)

    async def _too_large(self, send: Any) -> None:
        payload = json.dumps(
            error_body(
                f"request body exceeds {self.max_bytes} bytes (task.max_request_bytes)",
                "invalid_request_error",
                code="request_too_large",
            )
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})


class RequestQueue:
    """Up to `max_running` requests generate at once (the engine batches them); up to `max_waiting`
    more wait in arrival order; beyond that, ServerBusy.

    Waiting requests hold no thread, so a long queue cannot starve the server's other routes.
    """

    def __init__(self, max_running: int, max_waiting: int):
        self.max_waiting = max_waiting
        self._slots = asyncio.Semaphore(max_running)
        self._waiting = 0

    def check_capacity(self) -> None:
        if self._slots.locked() and self._waiting >= self.max_waiting:
            raise ServerBusy(
                f"all generation slots are busy and {self._waiting} requests are already waiting "
                "(task.max_concurrent_requests, task.max_waiting_requests); retry later"
            )

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        self.check_capacity()
        self._waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self._waiting -= 1
        try:
            yield
        finally:
            self._slots.release()
