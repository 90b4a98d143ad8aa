"""task=serve as a user meets it: `python run.py task=serve`, the official openai client, raw HTTP."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai
import pytest
from conftest import ROOT, compose

from llmft.infer.api import ServerSettings, create_app
from llmft.infer.engine import SamplingParams, build_engine

API_KEY = "sk-llmft-test"
MAX_NEW_TOKENS = 12  # the server's generation.max_new_tokens


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_up(url: str, process: subprocess.Popen | None, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}:\n{log.read_text()}")
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2)
            return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(
        f"no answer from {url}/health within {timeout} s:\n{log.read_text() if log.exists() else ''}"
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`python run.py task=serve` with an API key from the environment, greedy by default."""
    run_dir = tmp_path_factory.mktemp("serve")
    log = run_dir / "server.log"
    port = free_port()
    with open(log, "w") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "run.py",
                "task=serve",
                f"task.port={port}",
                "generation.do_sample=false",
                f"generation.max_new_tokens={MAX_NEW_TOKENS}",
                f"hydra.run.dir={run_dir}",
            ],
            cwd=ROOT,
            env={**os.environ, "LLMFT_API_KEY": API_KEY},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, process, log)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="module")
def engine():
    """The same model in this process: what the server must answer, token for token."""
    return build_engine(compose("task=serve", "generation.do_sample=false"))


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=f"{server}/v1", api_key=API_KEY, max_retries=0, timeout=60)


def greedy(engine, messages, max_new_tokens=MAX_NEW_TOKENS):
    return engine.chat(messages, SamplingParams(max_new_tokens=max_new_tokens))


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def send(url: str, body: bytes | dict, key: str | None = API_KEY) -> tuple[int, bytes, dict[str, str]]:
    """POST a JSON body: the status, the raw response body and the headers."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, data=data, headers=headers), timeout=60
        ) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read(), dict(error.headers)


def post(url: str, body: bytes | dict, key: str | None = API_KEY) -> tuple[int, dict]:
    status, raw, _ = send(url, body, key)
    return status, json.loads(raw)


@contextlib.contextmanager
def serving(app, tmp_path: Path):
    """`app` on a free local port, in a thread of this process."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, None, tmp_path / "none.log", timeout=30)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_models_lists_the_served_model(client):
    assert [model.id for model in client.models.list()] == ["tiny-llama"]


def test_greedy_reply_and_usage_match_the_engine(client, engine):
    messages = [{"role": "system", "content": "You are terse."}, *user("Name three colours.")]
    response = client.chat.completions.create(model="tiny-llama", messages=messages, temperature=0)
    expected = greedy(engine, messages)
    choice = response.choices[0]
    assert choice.message.role == "assistant" and choice.message.content == expected.text
    assert choice.finish_reason == expected.finish_reason
    prompt_tokens = len(
        engine.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=False)
    )
    assert response.usage.prompt_tokens == prompt_tokens
    assert response.usage.completion_tokens == expected.completion_tokens
    assert response.usage.total_tokens == prompt_tokens + expected.completion_tokens


def test_streamed_reply_equals_the_whole_one(client, engine):
    messages = user("Tell me about the sea.")
    chunks = list(
        client.chat.completions.create(
            model="tiny-llama",
            messages=messages,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    expected = greedy(engine, messages)
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1  # really streamed
    assert text == expected.text
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == expected.finish_reason
    assert chunks[-1].usage.completion_tokens == expected.completion_tokens
    assert chunks[-1].usage.prompt_tokens == len(engine.encode_chat(messages))


def test_max_tokens_stop_n_and_seed(client, engine):
    messages = user("Write a poem.")
    short = client.chat.completions.create(model="tiny-llama", messages=messages, temperature=0, max_tokens=3)
    assert short.usage.completion_tokens == 3 and short.choices[0].finish_reason == "length"

    full = greedy(engine, messages).text
    stop = full[len(full) // 2 : len(full) // 2 + 2]
    cut = client.chat.completions.create(model="tiny-llama", messages=messages, temperature=0, stop=[stop])
    assert (
        cut.choices[0].message.content == full[: full.index(stop)] and cut.choices[0].finish_reason == "stop"
    )

    def sample(seed):
        reply = client.chat.completions.create(
            model="tiny-llama", messages=messages, n=2, temperature=1.0, top_p=0.95, seed=seed
        )
        return [choice.message.content for choice in reply.choices]

    first = sample(11)
    assert len(first) == 2 and first[0] != first[1]
    assert sample(11) == first and sample(12) != first


def test_text_completions(client, engine):
    reply = client.completions.create(
        model="tiny-llama", prompt="Once upon a time", max_tokens=5, temperature=0
    )
    expected = engine.generate([engine.encode_text("Once upon a time")], SamplingParams(max_new_tokens=5))[0][
        0
    ]
    assert reply.choices[0].text == expected.text
    assert reply.usage.prompt_tokens == len(engine.encode_text("Once upon a time"))


CHAT, TEXT = "/v1/chat/completions", "/v1/completions"


@pytest.mark.parametrize(
    ("path", "body", "status", "param", "code"),
    [
        (CHAT, {"model": "tiny-llama", "messages": []}, 400, "messages", None),
        (
            CHAT,
            {"model": "tiny-llama", "messages": [{"role": "wizard", "content": "hi"}]},
            400,
            "messages.0.role",
            None,
        ),
        (CHAT, {"model": "tiny-llama", "messages": user("hi"), "max_tokens": -5}, 400, "max_tokens", None),
        (
            CHAT,
            {"model": "tiny-llama", "messages": user("word " * 1500)},
            400,
            "messages",
            "context_length_exceeded",
        ),
        (CHAT, {"model": "tiny-llama", "messages": user("hi"), "max_tokens": 5000}, 400, "max_tokens", None),
        (CHAT, b'{"model": "tiny-llama", "messages": [', 400, None, None),
        (CHAT, {"model": "gpt-4", "messages": user("hi")}, 404, "model", "model_not_found"),
        (TEXT, {"model": "tiny-llama", "prompt": []}, 400, "prompt", None),
        (TEXT, {"model": "tiny-llama"}, 400, "prompt", None),
        (TEXT, {"model": "tiny-llama", "prompt": "word " * 1500}, 400, "prompt", "context_length_exceeded"),
        (
            TEXT,
            {"model": "tiny-llama", "prompt": "hi", "max_tokens": 1024},
            400,
            "max_tokens",
            "context_length_exceeded",
        ),
        (TEXT, {"model": "tiny-llama", "prompt": "hi", "n": 0}, 400, "n", None),
        (TEXT, {"model": "tiny-llama", "prompt": "hi", "stop": [""]}, 400, "stop", None),
        (TEXT, {"model": "gpt-4", "prompt": "hi"}, 404, "model", "model_not_found"),
        (TEXT, b"not json", 400, None, None),
    ],
    ids=[
        "chat-empty-messages",
        "chat-unknown-role",
        "chat-negative-max-tokens",
        "chat-prompt-too-long",
        "chat-max-tokens-over-limit",
        "chat-malformed-json",
        "chat-unknown-model",
        "text-empty-prompt-list",
        "text-no-prompt",
        "text-prompt-too-long",
        "text-max-tokens-past-the-context",
        "text-zero-choices",
        "text-empty-stop-string",
        "text-unknown-model",
        "text-malformed-json",
    ],
)
def test_bad_requests_get_openai_errors_and_the_server_keeps_serving(
    server, client, path, body, status, param, code
):
    answered, reply = post(f"{server}{path}", body)
    assert answered == status
    assert set(reply["error"]) == {"message", "type", "param", "code"}
    assert reply["error"]["type"] == "invalid_request_error" and reply["error"]["message"]
    assert reply["error"]["param"] == param and reply["error"]["code"] == code
    assert client.chat.completions.create(
        model="tiny-llama", messages=user("still there?"), max_tokens=2
    ).choices


def test_the_openai_client_raises_on_bad_requests(client):
    with pytest.raises(openai.BadRequestError, match="messages.0.role"):
        client.chat.completions.create(model="tiny-llama", messages=[{"role": "wizard", "content": "hi"}])
    with pytest.raises(openai.NotFoundError, match="gpt-4"):
        client.chat.completions.create(model="gpt-4", messages=user("hi"))


def test_an_oversized_body_gets_413_and_the_server_keeps_serving(server, client):
    status, reply = post(f"{server}/v1/chat/completions", {"messages": user("x" * 1_100_000)})
    assert status == 413 and reply["error"]["code"] == "request_too_large"
    assert client.completions.create(model="tiny-llama", prompt="Once upon a time", max_tokens=2).choices


# A temperature so small that logits / temperature overflow: sampling fails inside generate(), a
# real server fault whose exception text ("probability tensor contains inf, nan ...") must stay inside.
FAILING_SAMPLING = {"temperature": 1e-40, "max_tokens": 4}


@pytest.mark.parametrize(
    ("path", "body"),
    [(CHAT, {"messages": user("hi"), **FAILING_SAMPLING}), (TEXT, {"prompt": "Once", **FAILING_SAMPLING})],
    ids=["chat", "text"],
)
def test_a_server_fault_is_a_500_with_a_request_id_and_no_internals(server, client, path, body):
    status, raw, headers = send(f"{server}{path}", body)
    error = json.loads(raw)["error"]
    assert status == 500 and error["type"] == "server_error" and error["code"] == "internal_error"
    assert f"request id {headers['x-request-id']}" in error["message"]
    assert not any(word in raw.decode().lower() for word in ("probability", "tensor", "traceback", ".py"))
    assert client.chat.completions.create(model="tiny-llama", messages=user("and now?"), max_tokens=2).choices


def sse_data(raw: bytes) -> list[str]:
    return [line.removeprefix("data: ") for line in raw.decode().splitlines() if line.startswith("data: ")]


@pytest.mark.parametrize(
    ("path", "body"),
    [(CHAT, {"messages": user("hi"), **FAILING_SAMPLING}), (TEXT, {"prompt": "Once", **FAILING_SAMPLING})],
    ids=["chat", "text"],
)
def test_a_failure_inside_a_stream_ends_it_with_an_error_event(server, path, body):
    status, raw, _ = send(f"{server}{path}", {**body, "stream": True})
    events = sse_data(raw)
    assert status == 200 and events, raw  # streaming had begun: the status cannot change any more
    error = json.loads(events[-1])["error"]  # the last event, and no [DONE] after it
    assert error["type"] == "server_error" and "request id req-" in error["message"]
    assert "probability" not in raw.decode()


def test_the_openai_client_raises_on_an_error_event(client):
    stream = client.chat.completions.create(
        model="tiny-llama", messages=user("hi"), stream=True, **FAILING_SAMPLING
    )
    with pytest.raises(openai.APIError, match="request id req-"):
        for _ in stream:
            pass
    assert client.chat.completions.create(model="tiny-llama", messages=user("fine?"), max_tokens=2).choices


LONG_REPLY = "Question number 3: what is 3 plus 3?"  # the tiny model's greedy reply runs to 900+ tokens


def test_a_full_queue_answers_503_with_retry_after(engine, tmp_path):
    settings = ServerSettings(defaults=SamplingParams(), max_concurrent_requests=1, max_waiting_requests=1)
    with serving(create_app(settings, engine=engine), tmp_path) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0, timeout=120)
        long = {"model": "tiny-llama", "messages": user(LONG_REPLY), "max_tokens": 900, "temperature": 0}
        running = client.chat.completions.create(**long, stream=True)
        next(iter(running))  # its first chunk came: it holds the one generation slot
        waiting = client.chat.completions.create(**long, stream=True)  # admitted: it waits for the slot
        time.sleep(0.3)
        with pytest.raises(openai.APIStatusError) as refused:
            client.chat.completions.create(model="tiny-llama", messages=user("me too"), max_tokens=2)
        assert refused.value.status_code == 503 and refused.value.response.headers["retry-after"] == "1"
        error = refused.value.response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"} and error["code"] == "server_busy"
        assert "task.max_waiting_requests" in error["message"]
        running.close()
        waiting.close()
        patient = openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=5, timeout=120)
        assert patient.chat.completions.create(
            model="tiny-llama", messages=user("now?"), max_tokens=2
        ).choices


@pytest.mark.parametrize("key", [None, "sk-wrong"], ids=["missing", "wrong"])
def test_a_missing_or_wrong_api_key_gets_401(server, client, key):
    status, reply = post(f"{server}/v1/chat/completions", {"messages": user("hi")}, key=key)
    assert status == 401 and reply["error"]["code"] == "invalid_api_key"
    if key is not None:
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"{server}/v1", api_key=key, max_retries=0).models.list()
    assert client.models.list().data


def test_sixteen_concurrent_streams_each_get_their_own_answer(client, engine):
    questions = [f"Question number {i}: what is {i} plus {i}?" for i in range(16)]
    expected = [greedy(engine, user(q)).text for q in questions]

    def ask(question: str) -> str:
        stream = client.chat.completions.create(
            model="tiny-llama", messages=user(question), temperature=0, stream=True
        )
        return "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=16) as pool:
        futures = [pool.submit(ask, q) for q in questions]
        answers = [future.result(timeout=90) for future in futures]
    assert answers == expected
    assert len(set(expected)) > 8  # different questions, different answers: a mix-up would show
    assert time.monotonic() - started < 90


@pytest.mark.benchmark
def test_throughput_of_one_and_sixteen_concurrent_streams(client):
    """A figure, not a check: `pytest tests/test_serve.py -m benchmark -s` prints the aggregate tokens/s."""

    def stream_tokens(question: str) -> int:
        chunks = client.chat.completions.create(
            model="tiny-llama",
            messages=user(question),
            temperature=0,
            max_tokens=64,
            stream=True,
            stream_options={"include_usage": True},
        )
        return [chunk.usage for chunk in chunks][-1].completion_tokens

    def tokens_per_second(streams: int) -> float:
        start = threading.Barrier(streams + 1)  # every client ready first: the requests start together

        def ask(question: str) -> int:
            start.wait()
            return stream_tokens(question)

        with ThreadPoolExecutor(max_workers=streams) as pool:
            futures = [
                pool.submit(ask, f"Question number {i}: what is {i} plus {i}?") for i in range(streams)
            ]
            start.wait()
            started = time.monotonic()
            tokens = sum(future.result() for future in futures)
        return tokens / (time.monotonic() - started)

    tokens_per_second(1)  # warm up
    one, sixteen = tokens_per_second(1), tokens_per_second(16)
    print(
        f"\nserve throughput: 1 stream {one:.0f} tok/s, 16 streams {sixteen:.0f} tok/s aggregate ({sixteen / one:.1f}x)"
    )


def test_reward_model_scores_conversations(tmp_path, engine):
    """A sequence-classification checkpoint is served as a scorer on /v1/score."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from llmft.model.loader import is_reward_model
    from llmft.model.reward import RewardScorer

    base = engine.tokenizer.name_or_path
    reward_dir = tmp_path / "reward"
    torch.manual_seed(0)
    head = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1)
    head.save_pretrained(reward_dir)
    engine.tokenizer.save_pretrained(reward_dir)
    cfg = compose("task=serve", f"model.name_or_path={reward_dir}", "model.tiny=null")
    assert is_reward_model(cfg.model) and not is_reward_model(compose("task=serve").model)

    app = create_app(ServerSettings(defaults=SamplingParams()), scorer=RewardScorer.load(cfg))
    with serving(app, tmp_path) as url:
        good = [*user("Is the sky blue?"), {"role": "assistant", "content": "Yes, on a clear day."}]
        bad = [*user("Is the sky blue?"), {"role": "assistant", "content": "No idea, go away."}]
        status, reply = post(f"{url}/v1/score", {"conversations": [good, bad]}, key=None)
        assert status == 200
        with torch.inference_mode():
            expected = [
                float(
                    head(
                        input_ids=torch.tensor([engine.tokenizer.apply_chat_template(c, return_dict=False)])
                    ).logits[0, 0]
                )
                for c in (good, bad)
            ]
        assert [item["score"] for item in reply["data"]] == pytest.approx(expected, abs=1e-5)
        status, reply = post(f"{url}/v1/chat/completions", {"messages": user("hi")}, key=None)
        assert status == 400 and "reward model" in reply["error"]["message"]


def _chromium():
    """Debian's chromium + chromium-driver (CI installs them); the test is skipped without them."""
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip(
            "web page test needs Debian's chromium and chromium-driver: apt-get install chromium chromium-driver"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--window-size=1000,800",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(driver), options=options)


def test_web_page_streams_answers_and_keeps_the_conversation(server, engine, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    browser = _chromium()
    try:
        browser.get(f"{server}/")
        wait = WebDriverWait(browser, 30)
        alert = wait.until(expected_conditions.alert_is_present())  # the page asks for the server's key
        alert.send_keys(API_KEY)
        alert.accept()
        wait.until(lambda b: b.find_element(By.ID, "model-name").text == "tiny-llama")
        # count how often the answer's text changes: a streamed answer grows piece by piece
        browser.execute_script("""
            window.textUpdates = 0;
            new MutationObserver(() => window.textUpdates++).observe(
                document.getElementById('messages'), {subtree: true, childList: true, characterData: true});""")

        def ask(text: str) -> str:
            before = len(browser.find_elements(By.CSS_SELECTOR, ".message.assistant"))
            browser.find_element(By.ID, "prompt").send_keys(text, Keys.ENTER)
            wait.until(
                lambda b: len(b.find_elements(By.CSS_SELECTOR, ".message.assistant:not(.streaming)")) > before
            )
            bubbles = browser.find_elements(By.CSS_SELECTOR, ".message.assistant")
            return browser.execute_script("return arguments[0].textContent", bubbles[-1])

        first = ask("Hello there")
        assert first == greedy(engine, user("Hello there")).text
        assert browser.execute_script("return window.textUpdates") > 3  # bubbles + several streamed pieces
        second = ask("And then?")
        conversation = [*user("Hello there"), {"role": "assistant", "content": first}, *user("And then?")]
        assert second == greedy(engine, conversation).text  # the page sent the whole conversation
        assert not browser.find_elements(By.CSS_SELECTOR, ".message.error")
        screenshot = tmp_path / "webchat.png"
        browser.save_screenshot(str(screenshot))
        assert screenshot.stat().st_size > 1000
    finally:
        browser.quit()
