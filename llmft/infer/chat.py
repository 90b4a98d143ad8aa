"""task=chat: talk to the model in the terminal, replies streamed as they are generated."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO

from omegaconf import DictConfig

from llmft.infer.engine import Engine, SamplingParams, build_engine, require_backend

HELP = "Commands: /clear forgets the conversation, /history shows it, /system <text> sets the system prompt, /exit quits."


class ChatSession:
    """A conversation with the engine: the history grows by one user and one assistant turn per reply."""

    def __init__(self, engine: Engine, params: SamplingParams, system_prompt: str | None = None):
        self.engine = engine
        self.params = params
        self.system_prompt = system_prompt
        self.turns: list[dict[str, str]] = []

    def conversation(self) -> list[dict[str, str]]:
        system = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        return system + self.turns

    def clear(self) -> None:
        self.turns = []

    def reply(self, text: str) -> Iterator[str]:
        """Stream the answer to `text`; both join the history, even if the answer is cut short."""
        prompt = self.engine.encode_chat([*self.conversation(), {"role": "user", "content": text}])
        room = self.engine.context_length - len(prompt)
        if room < 1:
            raise ValueError(
                f"the conversation ({len(prompt)} tokens) no longer fits the model's context "
                f"({self.engine.context_length} tokens): /clear to start over"
            )
        stream = self.engine.stream(
            prompt, self.params.replace(max_new_tokens=min(self.params.max_new_tokens, room))
        )
        answer: list[str] = []
        try:
            for piece in stream:
                answer.append(piece)
                yield piece
        finally:
            stream.cancel()
            self.turns += [
                {"role": "user", "content": text},
                {"role": "assistant", "content": "".join(answer)},
            ]


def run_repl(session: ChatSession, read: Callable[[str], str] = input, out: TextIO = sys.stdout) -> None:
    """Read-eval-print loop until /exit or end of input; Ctrl-C stops the reply being written."""
    print(f"Chatting with {session.engine.model_name}. {HELP}", file=out, flush=True)
    while True:
        try:
            line = read("User: ").strip()
        except EOFError:
            print(file=out)
            return
        except KeyboardInterrupt:
            print(file=out)
            continue
        command, _, argument = line.partition(" ")
        if not line:
            continue
        if command in ("/exit", "/quit"):
            return
        if command == "/clear":
            session.clear()
            print("History cleared.", file=out, flush=True)
        elif command == "/history":
            for message in session.conversation():
                print(f"[{message['role']}] {message['content']}", file=out)
            print(f"({len(session.turns) // 2} exchanges)", file=out, flush=True)
        elif command == "/system":
            session.system_prompt = argument.strip() or None
            print(f"System prompt {'set' if session.system_prompt else 'removed'}.", file=out, flush=True)
        elif command.startswith("/") and command != "/":
            print(f"Unknown command {command}. {HELP}", file=out, flush=True)
        else:
            _answer(session, line, out)


def _answer(session: ChatSession, text: str, out: TextIO) -> None:
    print("Assistant: ", end="", file=out, flush=True)
    try:
        for piece in session.reply(text):
            print(piece, end="", file=out, flush=True)
    except KeyboardInterrupt:
        print(" [stopped]", end="", file=out)
    except ValueError as exc:
        print(f"[{exc}]", end="", file=out)
    print(file=out, flush=True)


def chat(cfg: DictConfig, run_dir: Path) -> None:
    import readline  # noqa: F401 - line editing and history for input()

    from transformers.utils import logging as hf_logging

    require_backend(cfg.generation.backend)
    hf_logging.disable_progress_bar()
    engine = build_engine(cfg)
    run_repl(ChatSession(engine, SamplingParams.from_config(cfg.generation), cfg.task.system_prompt))
