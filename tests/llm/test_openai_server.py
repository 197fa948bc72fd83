"""OpenAIChatModel against a real OpenAI-compatible server: xllamacpp's own HTTP server
serving the embedded model in a child process on a free loopback port."""

from __future__ import annotations

import selectors
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kbchat.errors import BackendError
from kbchat.llm import complete
from kbchat.llm.openai import OpenAIChatModel
from kbchat.types import Message

pytestmark = [pytest.mark.integration, pytest.mark.slow]

API_KEY = "sk-test-key-for-the-loopback-server"
QUESTION = [Message("user", "What is the capital of France? Answer in one word.")]

# Runs in the child: load the model, serve on 127.0.0.1:<any free port>, print the
# address, and serve until stdin closes.
SERVER_SCRIPT = """
import sys, xllamacpp
params = xllamacpp.CommonParams()
params.model.path = sys.argv[1]
params.api_keys = [sys.argv[2]]
params.hostnames = ["127.0.0.1"]
params.port = 0
params.n_ctx = 2048
params.n_parallel = 1
params.ui = False
params.offline = True
params.verbosity = 1
server = xllamacpp.Server(params)
print(server.listening_address, flush=True)
sys.stdin.read()
"""


@pytest.fixture(scope="module")
def server_url(default_model_path: Path) -> Iterator[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", SERVER_SCRIPT, str(default_model_path), API_KEY],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        selector = selectors.DefaultSelector()
        assert process.stdout is not None
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout=120):
            pytest.fail("xllamacpp server did not start within 120 s")
        address = process.stdout.readline().strip()
        assert address.startswith("http://127.0.0.1:"), f"server printed {address!r}"
        assert httpx.get(f"{address}/health", timeout=10).status_code == 200
        yield f"{address}/v1"
    finally:
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def model_for(url: str, **kw: object) -> OpenAIChatModel:
    options = {"base_url": url, "model": "qwen", "api_key": API_KEY, "timeout_s": 60, **kw}
    return OpenAIChatModel(**options)  # type: ignore[arg-type]


def test_streams_an_answer_with_server_usage(server_url: str) -> None:
    model = model_for(server_url)
    deltas = list(model.stream(QUESTION, temperature=0))
    text = "".join(d.text for d in deltas)
    assert "Paris" in text
    assert len(deltas) >= 2 and deltas[-1].finish_reason == "stop"
    usage = deltas[-1].usage
    assert usage is not None
    # the server's exact count includes the chat template, unlike the client's estimate
    assert usage.prompt_tokens > model.count_tokens(QUESTION[0].content) + 4
    assert usage.completion_tokens >= 1


def test_max_tokens_gives_length(server_url: str) -> None:
    text, usage, finish = complete(
        model_for(server_url), [Message("user", "Tell me a long story.")], max_tokens=4
    )
    assert finish == "length" and usage.completion_tokens == 4 and text


def test_wrong_api_key_quotes_the_server(server_url: str) -> None:
    with pytest.raises(BackendError) as info:
        complete(model_for(server_url, api_key="sk-wrong-key"), QUESTION)
    message = str(info.value)
    assert "HTTP 401" in message and "Invalid API Key" in message
    assert f"{server_url}/chat/completions" in message and "sk-wrong-key" not in message


def test_cancel_mid_answer_frees_the_server(server_url: str) -> None:
    model = model_for(server_url)
    cancel = threading.Event()
    stream = model.stream([Message("user", "Write a long story.")], max_tokens=400, cancel=cancel)
    assert next(stream).text
    cancel.set()
    assert next(stream).finish_reason == "cancelled"
    assert "Paris" in complete(model, QUESTION, temperature=0)[0]


def test_wrong_path_is_a_clear_backend_error(server_url: str) -> None:
    base = server_url.removesuffix("/v1") + "/not-an-api"
    with pytest.raises(BackendError, match=r"HTTP 404"):
        complete(model_for(base), QUESTION)
