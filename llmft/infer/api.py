"""The OpenAI-compatible HTTP API and the web chat page, served over one engine.

Routes: GET /v1/models, POST /v1/chat/completions, POST /v1/completions (both streamed as
server-sent events when asked), POST /v1/score (reward models), GET / (the chat page),
GET /health. Errors use OpenAI's shape (llmft.infer.api_errors). Concurrent requests generate
together (task.max_concurrent_requests, batched by the engine); more wait in a bounded queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from importlib.resources import files
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Request
from fastapi.responses import HTMLResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from llmft.infer.api_errors import (
    ApiError,
    ServerBusy,
    busy_body,
    install_error_handlers,
    internal_error_body,
)
from llmft.infer.engine import Engine, SamplingParams, TextStream
from llmft.infer.limits import BodySizeLimit, RequestQueue
from llmft.infer.protocol import ChatCompletionRequest, CompletionRequest, SamplingRequest, ScoreRequest
from llmft.infer.replies import Reply, sse_event


@dataclass(frozen=True)
class ServerSettings:
    defaults: SamplingParams  # the generation config; requests override field by field
    api_key: str | None = None
    max_request_bytes: int = 1_000_000
    max_tokens_limit: int = 4096
    max_concurrent_requests: int = 16
    max_waiting_requests: int = 64


@dataclass
class Served:
    """What the routes serve: the settings, the engine or reward scorer, and the admission queue."""

    settings: ServerSettings
    engine: Engine | None
    scorer: Any | None
    queue: RequestQueue
    model_name: str
    started: int = field(default_factory=lambda: int(time.time()))


def served(request: Request) -> Served:
    return request.app.state.served


State = Annotated[Served, Depends(served)]  # a route's view of what the app serves


def authorize(request: Request, authorization: str | None = Header(default=None)) -> None:
    api_key = served(request).settings.api_key
    if api_key is None:
        return
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(token.strip().encode(), api_key.encode()):
        raise ApiError(
            401,
            "missing or wrong API key: send the header 'Authorization: Bearer <key>'",
            code="invalid_api_key",
        )


def check_model(state: Served, requested: str | None) -> None:
    if requested is not None and requested != state.model_name:
        raise ApiError(
            404,
            f"model {requested!r} is not served here; this server serves {state.model_name!r}",
            param="model",
            code="model_not_found",
        )


def generator(state: Served) -> Engine:
    if state.engine is None:
        raise ApiError(
            400,
            f"{state.model_name!r} is a reward model: it scores conversations (POST /v1/score) "
            "and does not generate text",
        )
    return state.engine


def sampling_params(
    request: SamplingRequest,
    settings: ServerSettings,
    context_length: int,
    prompt_tokens: int,
    prompt_param: str,
) -> SamplingParams:
    """The request's decoding settings over the server's defaults, within the context and the token limit."""
    room = context_length - prompt_tokens
    if room < 1:
        raise ApiError(
            400,
            f"the prompt has {prompt_tokens} tokens; this model's context is {context_length} tokens: shorten it",
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
            f"this model's context is {context_length} tokens and the prompt has {prompt_tokens}: "
            f"max_tokens can be at most {room}, got {requested}",
            "max_tokens",
            "context_length_exceeded",
        )
    defaults = settings.defaults
    params = defaults.replace(
        max_new_tokens=requested or min(defaults.max_new_tokens, room, settings.max_tokens_limit)
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


async def arriving_text(stream: TextStream) -> AsyncIterator[str]:
    """The stream's text as it is generated, read by a thread of its own.

    The event loop wakes once for everything that arrived meanwhile, not once per piece and
    stream: with many streams in one batch, per-piece thread hand-offs would cost more than
    generating. Leaving early (the client went away) cancels the stream.
    """
    loop = asyncio.get_running_loop()
    arrived: asyncio.Queue[str | BaseException | None] = asyncio.Queue()

    def hand_over(item: str | BaseException | None) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody is listening any more
            loop.call_soon_threadsafe(arrived.put_nowait, item)

    def read() -> None:
        try:
            for piece in stream:
                hand_over(piece)
            hand_over(None)
        except BaseException as exc:  # noqa: BLE001 - re-raised on the event loop below
            hand_over(exc)

    threading.Thread(target=read, name="llmft-stream-reader", daemon=True).start()
    try:
        while True:
            items = [await arrived.get()]
            while not arrived.empty():
                items.append(arrived.get_nowait())
            text = "".join(item for item in items if isinstance(item, str))
            if text:
                yield text
            if error := next((item for item in items if isinstance(item, BaseException)), None):
                raise error
            if None in items:
                return
    finally:
        stream.cancel()  # ends generation if the client left mid-reply


async def stream_events(
    state: Served, reply: Reply, prompts: list[list[int]], params: SamplingParams, n: int
) -> AsyncIterator[str]:
    """The replies as server-sent events, choice after choice; a failure ends the stream with an error event."""
    engine = generator(state)
    completion_tokens = 0
    try:
        async with state.queue.turn():
            for prompt_index, prompt in enumerate(prompts):
                for choice in range(n):
                    index = prompt_index * n + choice
                    # each choice its own draw: a request seed still gives n different replies
                    choice_params = (
                        params.replace(seed=params.seed + choice) if params.seed is not None else params
                    )
                    stream = engine.stream(prompt, choice_params)
                    if reply.chat:
                        yield sse_event(reply.chunk(index, opening=True))
                    async for text in arriving_text(stream):
                        yield sse_event(reply.chunk(index, text))
                    yield sse_event(reply.chunk(index, finish_reason=stream.completion.finish_reason))
                    completion_tokens += stream.completion.completion_tokens
    except ServerBusy as exc:
        yield sse_event(busy_body(exc))
        return
    except Exception as exc:  # noqa: BLE001 - the 200 status is sent already: report in the stream
        yield sse_event(internal_error_body(exc, "generation")[0])
        return
    if reply.include_usage:
        yield sse_event(reply.usage_chunk(sum(len(prompt) for prompt in prompts), completion_tokens))
    yield sse_event("[DONE]")


async def answer(
    state: Served, request: SamplingRequest, reply: Reply, prompts: list[list[int]], prompt_param: str
) -> Any:
    """The whole reply, or a stream of it; refused before any generation when the queue is full."""
    engine = generator(state)
    longest = max(len(prompt) for prompt in prompts)
    params = sampling_params(request, state.settings, engine.context_length, longest, prompt_param)
    if request.stream:
        state.queue.check_capacity()  # refuse now: once streaming starts, the status is already 200
        return StreamingResponse(
            stream_events(state, reply, prompts, params, request.n),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache"},
        )
    async with state.queue.turn():
        results = await run_in_threadpool(engine.generate, prompts, params, request.n)
    return reply.whole([c for choices in results for c in choices], sum(len(prompt) for prompt in prompts))


api = APIRouter(prefix="/v1", dependencies=[Depends(authorize)])


@api.get("/models")
async def models(state: State) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [{"id": state.model_name, "object": "model", "created": state.started, "owned_by": "llmft"}],
    }


@api.post("/chat/completions")
async def chat_completions(request: ChatCompletionRequest, state: State) -> Any:
    check_model(state, request.model)
    prompt = await run_in_threadpool(generator(state).encode_chat, request.conversation())
    include_usage = bool(request.stream_options and request.stream_options.include_usage)
    return await answer(state, request, Reply(True, state.model_name, include_usage), [prompt], "messages")


@api.post("/completions")
async def completions(request: CompletionRequest, state: State) -> Any:
    check_model(state, request.model)
    prompts = [await run_in_threadpool(generator(state).encode_text, text) for text in request.prompts()]
    include_usage = bool(request.stream_options and request.stream_options.include_usage)
    return await answer(state, request, Reply(False, state.model_name, include_usage), prompts, "prompt")


@api.post("/score")
async def score(request: ScoreRequest, state: State) -> dict[str, Any]:
    check_model(state, request.model)
    if state.scorer is None:
        raise ApiError(
            400,
            f"{state.model_name!r} is a generative model; serve a reward model "
            "(one trained with a *_rm method) to score conversations",
        )
    conversations = [[{"role": m.role, "content": m.text()} for m in c] for c in request.conversations]
    async with state.queue.turn():
        scores, tokens = await run_in_threadpool(state.scorer.score, conversations)
    return {
        "object": "list",
        "model": state.model_name,
        "data": [{"object": "score", "index": i, "score": s} for i, s in enumerate(scores)],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


pages = APIRouter(include_in_schema=False)


@pages.get("/", response_class=HTMLResponse)
async def chat_page() -> str:
    return files("llmft.infer").joinpath("static/index.html").read_text(encoding="utf-8")


@pages.get("/health")
async def health(state: State) -> dict[str, str]:
    return {"status": "ok", "model": state.model_name}


def create_app(settings: ServerSettings, engine: Engine | None = None, scorer: Any | None = None) -> FastAPI:
    """The app serving `engine` (a causal LM) or `scorer` (a reward model, llmft.model.reward)."""
    if (engine is None) == (scorer is None):
        raise ValueError("serve either an engine or a reward scorer")
    app = FastAPI(title="llmft", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.served = Served(
        settings,
        engine,
        scorer,
        RequestQueue(settings.max_concurrent_requests, settings.max_waiting_requests),
        (engine or scorer).model_name,
    )
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)
    install_error_handlers(app)
    app.include_router(api)
    app.include_router(pages)
    return app
