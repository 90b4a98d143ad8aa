"""The OpenAI-compatible HTTP API and the web chat page, served over one engine.

Routes: GET /v1/models, POST /v1/chat/completions, POST /v1/completions (both streamed as
server-sent events when asked), POST /v1/score (reward models), GET / (the chat page),
GET /health. Errors use OpenAI's shape {"error": {"message", "type", "param", "code"}}.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from llmft.infer.engine import Completion, Engine, SamplingParams
from llmft.infer.limits import BodySizeLimit, RequestQueue, ServerBusy, error_body
from llmft.infer.protocol import ChatCompletionRequest, CompletionRequest, SamplingRequest, ScoreRequest


@dataclass(frozen=True)
class ServerSettings:
    defaults: SamplingParams  # the generation config; requests override field by field
    api_key: str | None = None
    max_request_bytes: int = 1_000_000
    max_tokens_limit: int = 4096
    max_waiting_requests: int = 64


class ApiError(Exception):
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


def _event(payload: dict[str, Any] | str) -> str:
    return f"data: {payload if isinstance(payload, str) else json.dumps(payload)}\n\n"


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


class _Reply:
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
        return {**body, "usage": _usage(prompt_tokens, sum(c.completion_tokens for c in completions))}

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
        return {**self._envelope([], chunk=True), "usage": _usage(prompt_tokens, completion_tokens)}


def _first_validation_problem(exc: RequestValidationError) -> tuple[str, str | None]:
    error = exc.errors()[0]
    location = [str(part) for part in error.get("loc", ()) if part != "body"]
    if error.get("type") == "json_invalid":
        return (
            f"the request body is not valid JSON ({error.get('ctx', {}).get('error', 'parse error')})",
            None,
        )
    param = ".".join(location) or None
    return (f"{param}: {error['msg']}" if param else error["msg"]), param


def create_app(settings: ServerSettings, engine: Engine | None = None, scorer: Any | None = None) -> FastAPI:
    """The app serving `engine` (a causal LM) or `scorer` (a reward model, llmft.infer.reward)."""
    if (engine is None) == (scorer is None):
        raise ValueError("serve either an engine or a reward scorer")
    model_name = (engine or scorer).model_name
    started = int(time.time())
    queue = RequestQueue(settings.max_waiting_requests)
    page = files("llmft.infer").joinpath("static/index.html").read_text(encoding="utf-8")

    app = FastAPI(title="llmft", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        message, param = _first_validation_problem(exc)
        return JSONResponse(error_body(message, "invalid_request_error", param), status_code=400)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse(error_body(str(exc.detail), "invalid_request_error"), status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def server_error(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(error_body(f"internal error: {exc}", "server_error"), status_code=500)

    @app.exception_handler(ServerBusy)
    async def busy(_: Request, exc: ServerBusy) -> JSONResponse:
        return JSONResponse(error_body(str(exc), "server_busy", code="server_busy"), status_code=503)

    def authorize(authorization: str | None = Header(default=None)) -> None:
        if settings.api_key is None:
            return
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(
            token.strip().encode(), settings.api_key.encode()
        ):
            raise ApiError(
                401,
                "missing or wrong API key: send the header 'Authorization: Bearer <key>'",
                code="invalid_api_key",
            )

    def check_model(requested: str | None) -> None:
        if requested is not None and requested != model_name:
            raise ApiError(
                404,
                f"model {requested!r} is not served here; this server serves {model_name!r}",
                param="model",
                code="model_not_found",
            )

    def generator() -> Engine:
        if engine is None:
            raise ApiError(
                400,
                f"{model_name!r} is a reward model: it scores conversations (POST /v1/score) "
                "and does not generate text",
            )
        return engine

    def sampling(request: SamplingRequest, prompt_lengths: list[int], prompt_param: str) -> SamplingParams:
        room = generator().context_length - max(prompt_lengths)
        if room < 1:
            raise ApiError(
                400,
                f"the prompt has {max(prompt_lengths)} tokens; this model's context is "
                f"{engine.context_length} tokens: shorten it",
                prompt_param,
                "context_length_exceeded",
            )
        requested = request.requested_tokens()
        if requested is not None and requested > settings.max_tokens_limit:
            raise ApiError(
                400,
                f"max_tokens={requested} is over this server's limit of {settings.max_tokens_limit} "
                "(task.max_tokens_limit)",
                "max_tokens",
            )
        if requested is not None and requested > room:
            raise ApiError(
                400,
                f"this model's context is {engine.context_length} tokens and the prompt has "
                f"{max(prompt_lengths)}: max_tokens can be at most {room}, got {requested}",
                "max_tokens",
                "context_length_exceeded",
            )
        params = settings.defaults.replace(
            max_new_tokens=requested or min(settings.defaults.max_new_tokens, room, settings.max_tokens_limit)
        )
        if request.temperature is not None:
            params = params.replace(temperature=request.temperature, do_sample=request.temperature > 0)
        overrides = {
            "top_p": request.top_p,
            "top_k": request.top_k,
            "repetition_penalty": request.repetition_penalty,
            "seed": request.seed,
            "stop": tuple(request.stop) or None,
        }
        return params.replace(**{key: value for key, value in overrides.items() if value is not None})

    async def answer(
        request: SamplingRequest, reply: _Reply, prompts: list[list[int]], prompt_param: str
    ) -> Any:
        params = sampling(request, [len(prompt) for prompt in prompts], prompt_param)
        prompt_tokens = sum(len(prompt) for prompt in prompts)
        if not request.stream:
            async with queue.turn():
                results = await run_in_threadpool(engine.generate, prompts, params, request.n)
            return reply.whole([c for choices in results for c in choices], prompt_tokens)
        queue.check_capacity()  # refuse now: once streaming starts, the status is already 200
        return StreamingResponse(
            stream_events(reply, prompts, params, request.n, prompt_tokens),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache"},
        )

    async def stream_events(
        reply: _Reply, prompts: list[list[int]], params: SamplingParams, n: int, prompt_tokens: int
    ) -> AsyncIterator[str]:
        completion_tokens = 0
        try:
            async with queue.turn():
                for prompt_index, prompt in enumerate(prompts):
                    for choice in range(n):
                        index = prompt_index * n + choice
                        # each choice its own draw: a request seed still gives n different replies
                        choice_params = (
                            params.replace(seed=params.seed + choice) if params.seed is not None else params
                        )
                        stream = engine.stream(prompt, choice_params)
                        pieces = iter(stream)
                        if reply.chat:
                            yield _event(reply.chunk(index, opening=True))
                        try:
                            while (piece := await run_in_threadpool(next, pieces, None)) is not None:
                                yield _event(reply.chunk(index, piece))
                        finally:
                            stream.cancel()  # ends generation if the client left mid-reply
                        yield _event(reply.chunk(index, finish_reason=stream.completion.finish_reason))
                        completion_tokens += stream.completion.completion_tokens
        except ServerBusy as exc:
            yield _event(error_body(str(exc), "server_busy", code="server_busy"))
        except Exception as exc:  # noqa: BLE001 - the status is sent already: report in the stream
            yield _event(error_body(f"generation failed: {exc}", "server_error"))
        else:
            if reply.include_usage:
                yield _event(reply.usage_chunk(prompt_tokens, completion_tokens))
        yield _event("[DONE]")

    api = APIRouter(prefix="/v1", dependencies=[Depends(authorize)])

    @api.get("/models")
    async def models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"id": model_name, "object": "model", "created": started, "owned_by": "llmft"}],
        }

    @api.post("/chat/completions")
    async def chat_completions(request: ChatCompletionRequest) -> Any:
        check_model(request.model)
        prompt = await run_in_threadpool(generator().encode_chat, request.conversation())
        include_usage = bool(request.stream_options and request.stream_options.include_usage)
        return await answer(request, _Reply(True, model_name, include_usage), [prompt], "messages")

    @api.post("/completions")
    async def completions(request: CompletionRequest) -> Any:
        check_model(request.model)
        prompts = [await run_in_threadpool(generator().encode_text, text) for text in request.prompts()]
        include_usage = bool(request.stream_options and request.stream_options.include_usage)
        return await answer(request, _Reply(False, model_name, include_usage), prompts, "prompt")

    @api.post("/score")
    async def score(request: ScoreRequest) -> dict[str, Any]:
        check_model(request.model)
        if scorer is None:
            raise ApiError(
                400,
                f"{model_name!r} is a generative model; serve a reward model "
                "(one trained with a *_rm method) to score conversations",
            )
        conversations = [[{"role": m.role, "content": m.text()} for m in c] for c in request.conversations]
        async with queue.turn():
            scores, tokens = await run_in_threadpool(scorer.score, conversations)
        return {
            "object": "list",
            "model": model_name,
            "data": [{"object": "score", "index": i, "score": s} for i, s in enumerate(scores)],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    app.include_router(api)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def chat_page() -> str:
        return page

    @app.get("/health", include_in_schema=False)
    async def health() -> dict[str, str]:
        return {"status": "ok", "model": model_name}

    return app
