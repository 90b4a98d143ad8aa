"""Server guards: a request-body size cap and a first-come queue in front of the engine."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any


def error_body(message: str, type_: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    """OpenAI's error shape."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


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


class ServerBusy(Exception):
    pass


class RequestQueue:
    """One generation at a time, in arrival order; beyond `max_waiting` queued requests, ServerBusy.

    Waiting requests hold no thread (only the running one does), so a long queue cannot starve
    the server's other routes.
    """

    def __init__(self, max_waiting: int):
        self.max_waiting = max_waiting
        self._lock = asyncio.Lock()
        self._waiting = 0

    def check_capacity(self) -> None:
        if self._lock.locked() and self._waiting >= self.max_waiting:
            raise ServerBusy(
                f"{self._waiting} requests are already waiting (task.max_waiting_requests); retry later"
            )

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        self.check_capacity()
        self._waiting += 1
        try:
            await self._lock.acquire()
        finally:
            self._waiting -= 1
        try:
            yield
        finally:
            self._lock.release()
