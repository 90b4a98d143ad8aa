"""The generation interface every backend implements, and the choice of backend.

An engine owns the tokenizer with its chat template, so prompts are rendered and counted the
same way whichever backend generates; backends only turn token ids into text.
"""

from __future__ import annotations

import dataclasses
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any

from llmft.config.imports import import_entry_point
from llmft.infer.backends import BACKENDS, backend_problem


@dataclass(frozen=True)
class SamplingParams:
    """One request's decoding settings (defaults from the `generation` config node)."""

    max_new_tokens: int = 512
    do_sample: bool = False  # False: greedy; temperature, top_p and top_k are then ignored
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0  # 0: no top-k filter
    repetition_penalty: float = 1.0
    stop: tuple[str, ...] = ()  # the reply ends before the first of these strings
    seed: int | None = None

    @classmethod
    def from_config(cls, gen: Any) -> SamplingParams:
        return cls(
            max_new_tokens=gen.max_new_tokens,
            do_sample=bool(gen.do_sample) and gen.temperature > 0,
            temperature=gen.temperature,
            top_p=gen.top_p,
            top_k=gen.top_k,
            repetition_penalty=gen.repetition_penalty,
            stop=tuple(gen.stop),
        )

    def replace(self, **changes: Any) -> SamplingParams:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str  # "stop" (end of turn or a stop string) | "length" (max_new_tokens reached)
    completion_tokens: int


class TextStream:
    """The text of one reply, piece by piece as it is generated.

    Iterate it for the pieces; afterwards `completion` holds the whole reply with its finish
    reason and token count. `cancel()` (any thread) ends generation early, e.g. when the
    client went away.
    """

    def __init__(self, pieces: Generator[str, None, Completion], cancel: Callable[[], None] = lambda: None):
        self._pieces = pieces
        self._cancel = cancel
        self.completion: Completion | None = None

    def __iter__(self) -> Iterator[str]:
        self.completion = yield from self._pieces

    def cancel(self) -> None:
        self._cancel()


def whole_reply(completion: Completion) -> Generator[str, None, Completion]:
    """A stream of one piece, for backends that return replies at once."""
    if completion.text:
        yield completion.text
    return completion


class Engine(ABC):
    """Chat templating and token counting; subclasses generate from token ids.

    Engines are safe to call from several threads: the backend queues or batches concurrent calls.
    """

    def __init__(self, tokenizer: Any, model_name: str, context_length: int):
        self.tokenizer = tokenizer
        self.model_name = model_name
        self.context_length = context_length
        self._tokenizer_lock = threading.Lock()  # fast tokenizers must not be mutated while shared

    def render_chat(self, messages: list[dict[str, str]], tools: list[dict] | None = None) -> str:
        """The prompt text the model sees: the conversation plus the assistant's opening."""
        with self._tokenizer_lock:
            return self.tokenizer.apply_chat_template(
                messages, tools=tools, add_generation_prompt=True, tokenize=False
            )

    def encode_chat(self, messages: list[dict[str, str]], tools: list[dict] | None = None) -> list[int]:
        """Token ids of the prompt; control tokens typed inside messages stay plain text."""
        with self._tokenizer_lock:
            ids = self.tokenizer.apply_chat_template(
                messages,
                tools=tools,
                add_generation_prompt=True,
                tokenize=True,
                return_dict=False,
                sanitize_control_tokens=True,
            )
        return list(ids)

    def encode_text(self, text: str) -> list[int]:
        """Token ids of a raw completion prompt (no chat template)."""
        with self._tokenizer_lock:
            return list(self.tokenizer(text)["input_ids"])

    def chat(self, messages: list[dict[str, str]], params: SamplingParams) -> Completion:
        return self.generate([self.encode_chat(messages)], params)[0][0]

    @abstractmethod
    def generate(
        self, prompts: list[list[int]], params: SamplingParams, n: int = 1
    ) -> list[list[Completion]]:
        """n completions for each prompt (token ids), generated together."""

    @abstractmethod
    def stream(self, prompt: list[int], params: SamplingParams) -> TextStream:
        """One completion of one prompt, streamed."""


def served_model_name(cfg: Any) -> str:
    """The name clients see: task.served_model_name, else the model (and adapter) as configured."""
    if cfg.task.served_model_name:
        return str(cfg.task.served_model_name)
    name = str(cfg.model.name_or_path)
    return f"{name}+{cfg.model.adapter_path}" if cfg.model.adapter_path else name


def require_backend(backend: str) -> None:
    """Fail before loading anything when the chosen backend's package is missing."""
    if problem := backend_problem(backend):
        raise RuntimeError(problem)


def build_engine(cfg: Any) -> Engine:
    """The engine of the composed config: cfg.generation.backend over cfg.model (+ adapter)."""
    require_backend(cfg.generation.backend)
    return import_entry_point(BACKENDS[cfg.generation.backend]).from_config(cfg)
