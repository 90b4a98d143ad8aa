"""task=chat in a real pseudo-terminal: streamed replies, history kept, /clear and /exit."""

from __future__ import annotations

import re
import sys

import pexpect
import pytest
from conftest import ROOT, compose

from llmft.infer.engine import SamplingParams, build_engine

MAX_NEW_TOKENS = 10
PROMPT = "User: "


@pytest.fixture(scope="module")
def engine():
    return build_engine(compose("task=chat"))


def greedy(engine, messages) -> str:
    return engine.chat(messages, SamplingParams(max_new_tokens=MAX_NEW_TOKENS)).text


def visible(text: str) -> str:
    """What a terminal shows, compared loosely: printable characters, whitespace collapsed."""
    return " ".join("".join(c for c in text.replace("\r\n", "\n") if c.isprintable() or c.isspace()).split())


def say(chat: pexpect.spawn, line: str) -> str:
    """Send a line; return what was printed before the next prompt."""
    chat.sendline(line)
    chat.expect_exact(PROMPT)
    return chat.before.split("\n", 1)[1] if "\n" in chat.before else ""  # drop the echoed input


def reply_of(output: str) -> str:
    match = re.search(r"Assistant: (.*)", output, flags=re.DOTALL)
    assert match, f"no reply in {output!r}"
    return match.group(1)


def test_chat_in_a_terminal(engine, tmp_path):
    chat = pexpect.spawn(
        sys.executable,
        [
            "run.py",
            "task=chat",
            "generation.do_sample=false",
            f"generation.max_new_tokens={MAX_NEW_TOKENS}",
            "task.system_prompt=You are terse.",
            f"hydra.run.dir={tmp_path}",
        ],
        cwd=str(ROOT),
        encoding="utf-8",
        codec_errors="replace",
        timeout=60,
        dimensions=(50, 400),
    )
    try:
        chat.expect_exact(PROMPT, timeout=120)
        assert "Chatting with tiny-llama" in chat.before and "/clear" in chat.before

        system = [{"role": "system", "content": "You are terse."}]
        first = reply_of(say(chat, "Hello there"))
        expected_first = greedy(engine, [*system, {"role": "user", "content": "Hello there"}])
        assert visible(first) == visible(expected_first)

        second = reply_of(say(chat, "Tell me more"))
        history = [
            *system,
            {"role": "user", "content": "Hello there"},
            {"role": "assistant", "content": expected_first},
            {"role": "user", "content": "Tell me more"},
        ]
        assert visible(second) == visible(greedy(engine, history))  # the first exchange was in the prompt
        assert visible(second) != visible(
            greedy(engine, [*system, {"role": "user", "content": "Tell me more"}])
        )

        shown = say(chat, "/history")
        assert "(2 exchanges)" in shown and "[user] Hello there" in shown and "[user] Tell me more" in shown

        assert "History cleared." in say(chat, "/clear")
        assert "(0 exchanges)" in say(chat, "/history")
        after_clear = reply_of(say(chat, "Tell me more"))
        assert visible(after_clear) == visible(
            greedy(engine, [*system, {"role": "user", "content": "Tell me more"}])
        )

        chat.sendline("/exit")
        chat.expect(pexpect.EOF, timeout=30)
    finally:
        chat.close(force=True)
    assert chat.exitstatus == 0
