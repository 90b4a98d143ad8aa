"""Every failure of the API as an OpenAI-shaped error: {"error": {"message", "type", "param", "code"}}.

Client mistakes say what to fix. Server faults say only that something failed, with a request id
that finds the traceback in the server's log: exception text can hold paths, tensors or worse.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

log = logging.getLogger("llmft.serve")

RETRY_AFTER_SECONDS = 1  # what a 503 asks clients to wait; the queue moves at generation speed


class ServerBusy(Exception):
    """Every generation slot and queue place is taken."""


class ApiError(Exception):
    """A request the server refuses, with its HTTP status and OpenAI error fields."""

    def __init__(
        self,
        status: int,
        message: str,
        param: str | None = None,
        code: str | None = None,
        type_: str = "invalid_request_error",
    ):
        super().__init__(message)
        self.status, self.body = status, error_body(message, type_, param, code)


def error_body(message: str, type_: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    """OpenAI's error shape."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def busy_body(exc: ServerBusy) -> dict[str, Any]:
    return error_body(str(exc), "server_busy", code="server_busy")


def internal_error_body(exc: BaseException, what: str) -> tuple[dict[str, Any], str]:
    """The body of a server fault (no exception text), and its request id; the traceback goes to the log."""
    request_id = f"req-{uuid.uuid4().hex[:16]}"
    log.error("%s failed (request id %s)", what, request_id, exc_info=exc)
    message = f"{what} failed on the server (request id {request_id}); its log has the details"
    return error_body(message, "server_error", code="internal_error"), request_id


def first_validation_problem(exc: RequestValidationError) -> tuple[str, str | None]:
    """The first problem pydantic found, as a message and the request field it concerns."""
    error = exc.errors()[0]
    location = [str(part) for part in error.get("loc", ()) if part != "body"]
    if error.get("type") == "json_invalid":
        return (
            f"the request body is not valid JSON ({error.get('ctx', {}).get('error', 'parse error')})",
            None,
        )
    param = ".".join(location) or None
    return (f"{param}: {error['msg']}" if param else error["msg"]), param


async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
    return JSONResponse(exc.body, status_code=exc.status)


async def _invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
    message, param = first_validation_problem(exc)
    return JSONResponse(error_body(message, "invalid_request_error", param), status_code=400)


async def _http_error(_: Request, exc: HTTPException) -> JSONResponse:
    return JSONResponse(error_body(str(exc.detail), "invalid_request_error"), status_code=exc.status_code)


async def _busy(_: Request, exc: ServerBusy) -> JSONResponse:
    return JSONResponse(busy_body(exc), status_code=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


async def _server_error(request: Request, exc: Exception) -> JSONResponse:
    body, request_id = internal_error_body(exc, f"{request.method} {request.url.path}")
    return JSONResponse(body, status_code=500, headers={"X-Request-Id": request_id})


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(ServerBusy, _busy)
    app.add_exception_handler(Exception, _server_error)
