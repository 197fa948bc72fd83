"""OpenAIChatModel against httpx.MockTransport and small loopback sockets."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from kbchat.errors import BackendError, BadInput, ConfigError, ContextLengthExceeded, Unsupported
from kbchat.llm import complete
from kbchat.llm.base import ChatModel, ForcedTool, ResponseFormat, complete_message
from kbchat.llm.openai import OpenAIChatModel
from kbchat.testing.contracts import ChatModelContract
from kbchat.testing.fakes import ScriptedChatModel
from kbchat.types import Message, ToolCall, ToolSpec, Usage
from tests.server.support import in_process_server

URL = "http://llm.test/v1"
KEY = "sk-very-secret-key"
USER = [Message("system", "Be brief."), Message("user", "保修期多长？")]


def chunk(content: str | None = None, finish: str | None = None, **extra: object) -> dict[str, Any]:
    delta = {} if content is None else {"content": content}
    return {
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }


def sse(*events: dict[str, Any] | str) -> bytes:
    lines = [f"data: {e if isinstance(e, str) else json.dumps(e)}\n\n" for e in events]
    return (": keep-alive\n\n" + "".join(lines)).encode()


ANSWER = sse(
    {"choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]},
    chunk("两年"),
    chunk("。"),
    chunk(finish="stop"),
    {"choices": [], "usage": {"prompt_tokens": 21, "completion_tokens": 2}},
    "[DONE]",
)


def streaming(body: bytes, status: int = 200) -> httpx.Response:
    return httpx.Response(status, headers={"content-type": "text/event-stream"}, content=body)


class Recorder:
    """A mock transport handler that answers from a script and records the requests."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers[min(len(self.requests), len(self.answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer


def make_model(handler: Callable[[httpx.Request], httpx.Response], **kw: object) -> OpenAIChatModel:
    client = httpx.Client(transport=httpx.MockTransport(handler))
    options = {"base_url": URL, "model": "qwen", "api_key": KEY, "backoff_s": 0.0, **kw}
    return OpenAIChatModel(client=client, **options)  # type: ignore[arg-type]


def test_streams_deltas_and_takes_usage_from_the_final_chunk() -> None:
    recorder = Recorder(streaming(ANSWER))
    deltas = list(make_model(recorder).stream(USER, temperature=0.0, max_tokens=64, stop=["\n\n"]))
    assert [d.text for d in deltas] == ["两年", "。", ""]
    assert deltas[-1].finish_reason == "stop"
    assert deltas[-1].usage == Usage(21, 2)
    request = recorder.requests[0]
    assert str(request.url) == "http://llm.test/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    body = json.loads(request.content)
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["model"] == "qwen" and body["max_tokens"] == 64 and body["stop"] == ["\n\n"]
    assert body["messages"][1] == {"role": "user", "content": "保修期多长？"}


def test_estimates_usage_when_server_sends_none_and_passes_length() -> None:
    body = sse(chunk("two "), chunk("years", finish="length"), "[DONE]")
    model = make_model(Recorder(streaming(body)))
    text, usage, finish = complete(model, USER, max_tokens=2)
    assert (text, finish) == ("two years", "length")
    assert usage.completion_tokens == 2
    assert usage.prompt_tokens == sum(model.count_tokens(m.content) + 4 for m in USER)


def test_accepts_a_non_streaming_json_answer() -> None:
    answer = {
        "choices": [{"message": {"content": "Two years."}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 3},
    }
    model = make_model(Recorder(httpx.Response(200, json=answer)))
    assert complete(model, USER) == ("Two years.", Usage(9, 3), "stop")


def test_http_4xx_quotes_server_message_names_url_and_is_not_retried() -> None:
    error = {"error": {"message": "model 'qwen' not found", "type": "invalid_request_error"}}
    recorder = Recorder(httpx.Response(404, json=error))
    with pytest.raises(BackendError) as info:
        complete(make_model(recorder), USER)
    assert "http://llm.test/v1/chat/completions" in str(info.value)
    assert "HTTP 404" in str(info.value) and "model 'qwen' not found" in str(info.value)
    assert len(recorder.requests) == 1


def test_5xx_is_retried_before_the_first_token() -> None:
    recorder = Recorder(httpx.Response(503, text="overloaded"), streaming(ANSWER))
    assert complete(make_model(recorder), USER)[0] == "两年。"
    assert len(recorder.requests) == 2


def test_retries_are_bounded_and_the_last_error_is_raised() -> None:
    recorder = Recorder(httpx.Response(500, json={"detail": "CUDA out of memory"}))
    with pytest.raises(BackendError, match="HTTP 500: CUDA out of memory"):
        complete(make_model(recorder, max_retries=2), USER)
    assert len(recorder.requests) == 3


def test_429_retry_after_is_honoured() -> None:
    limited = httpx.Response(429, headers={"retry-after": "0.2"}, json={"error": "slow down"})
    recorder = Recorder(limited, streaming(ANSWER))
    started = time.monotonic()
    assert complete(make_model(recorder), USER)[0] == "两年。"
    assert time.monotonic() - started >= 0.2


def test_connection_errors_are_retried_then_reported() -> None:
    refused = httpx.ConnectError("[Errno 111] Connection refused")
    recorder = Recorder(refused)
    with pytest.raises(BackendError, match=r"cannot reach chat model server http://llm\.test"):
        complete(make_model(recorder, max_retries=1), USER)
    assert len(recorder.requests) == 2
    recorder = Recorder(refused, streaming(ANSWER))
    assert complete(make_model(recorder), USER)[0] == "两年。"


def test_read_timeout_is_reported_without_retry() -> None:
    recorder = Recorder(httpx.ReadTimeout("timed out"))
    with pytest.raises(BackendError, match="read timeout"):
        complete(make_model(recorder), USER)
    assert len(recorder.requests) == 1


class _BrokenStream(httpx.SyncByteStream):
    def __iter__(self) -> Iterator[bytes]:
        yield sse(chunk("两年"))
        raise httpx.ReadError("connection reset by peer")


def test_failure_after_the_first_token_is_not_retried() -> None:
    broken = httpx.Response(
        200, headers={"content-type": "text/event-stream"}, stream=_BrokenStream()
    )
    recorder = Recorder(broken, streaming(ANSWER))
    stream = make_model(recorder).stream(USER)
    assert next(stream).text == "两年"
    with pytest.raises(BackendError, match="connection reset"):
        next(stream)
    assert len(recorder.requests) == 1


def test_error_event_and_cut_stream_are_backend_errors() -> None:
    body = sse(chunk("两"), {"error": {"message": "slot unavailable", "code": 503}})
    with pytest.raises(BackendError, match="slot unavailable"):
        complete(make_model(Recorder(streaming(body))), USER)
    with pytest.raises(BackendError, match="ended the stream mid-answer"):
        complete(make_model(Recorder(streaming(sse(chunk("两"))))), USER)


def test_cancel_ends_the_stream_with_finish_cancelled() -> None:
    cancel = threading.Event()
    stream = make_model(Recorder(streaming(ANSWER))).stream(USER, cancel=cancel)
    assert next(stream).text == "两年"
    cancel.set()
    final = next(stream)
    assert final.finish_reason == "cancelled" and final.text == ""
    assert final.usage is not None and final.usage.completion_tokens == 1
    with pytest.raises(StopIteration):
        next(stream)


def test_api_key_never_appears_in_errors_logs_or_repr(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    answers = Recorder(httpx.Response(502, json={"error": {"message": "bad gateway"}}))
    model = make_model(answers, max_retries=2)
    with pytest.raises(BackendError) as info:
        complete(model, USER)
    assert "retrying" in caplog.text  # retries are logged ...
    assert KEY not in caplog.text and KEY not in str(info.value)  # ... without the key
    assert KEY not in repr(model) and KEY not in str(vars(model))


def test_constructor_validates_settings() -> None:
    with pytest.raises(ConfigError, match="base_url"):
        OpenAIChatModel(base_url="localhost:8000", model="m")
    with pytest.raises(ConfigError, match="model name"):
        OpenAIChatModel(base_url=URL, model="")
    with pytest.raises(ValueError, match="timeout_s must be > 0"):
        OpenAIChatModel(base_url=URL, model="m", timeout_s=0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_down_server_fails_fast_with_a_clear_error() -> None:
    url = f"http://127.0.0.1:{_free_port()}/v1"
    model = OpenAIChatModel(base_url=url, model="m")  # default retries and backoff
    started = time.monotonic()
    with pytest.raises(BackendError, match=f"cannot reach chat model server {url}"):
        complete(model, USER)
    assert time.monotonic() - started < 3.0


def test_a_silent_server_hits_the_read_timeout() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        url = f"http://127.0.0.1:{server.getsockname()[1]}/v1"
        model = OpenAIChatModel(base_url=url, model="m", timeout_s=0.5)
        started = time.monotonic()
        with pytest.raises(BackendError, match="read timeout"):
            complete(model, USER)  # the socket accepts (backlog) but never answers
        assert time.monotonic() - started < 3.0


WEATHER = ToolSpec(
    "get_weather",
    "Weather in a city",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


def test_structured_and_tool_parameters_are_passed_through() -> None:
    recorder = Recorder(streaming(ANSWER))
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    history = [
        *USER,
        Message("assistant", "", tool_calls=(ToolCall("call_1", "get_weather", '{"city":"X"}'),)),
        Message("tool", "Sunny", tool_call_id="call_1"),
    ]
    model = make_model(recorder)
    complete_message(
        model,
        history,
        response_format=ResponseFormat("json_schema", schema, name="a", strict=True),
        tools=[WEATHER],
        tool_choice=ForcedTool("get_weather"),
        parallel_tool_calls=False,
    )
    body = json.loads(recorder.requests[0].content)
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "a", "schema": schema, "strict": True},
    }
    assert body["tools"][0]["function"]["name"] == "get_weather"
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert body["parallel_tool_calls"] is False
    assert body["messages"][2]["tool_calls"][0]["function"]["arguments"] == '{"city":"X"}'
    assert body["messages"][3] == {"role": "tool", "content": "Sunny", "tool_call_id": "call_1"}
    with pytest.raises(Unsupported, match="does not support grammar"):
        model.stream(USER, grammar='root ::= "a"')


def test_tool_call_fragments_are_joined_into_whole_calls() -> None:
    def call(index: int, **fields: object) -> dict[str, Any]:
        return {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": index, **fields}]}}]}

    body = sse(
        call(0, id="call_a", type="function", function={"name": "get_weather", "arguments": ""}),
        call(0, function={"arguments": '{"city": '}),
        call(1, id="call_b", function={"name": "get_weather", "arguments": '{"city": "Rome"}'}),
        call(0, function={"arguments": '"Paris"}'}),
        chunk(finish="tool_calls"),
        "[DONE]",
    )
    done = complete_message(make_model(Recorder(streaming(body))), USER, tools=[WEATHER])
    assert done.finish_reason == "tool_calls"
    assert done.tool_calls == [
        ToolCall("call_a", "get_weather", '{"city": "Paris"}'),
        ToolCall("call_b", "get_weather", '{"city": "Rome"}'),
    ]


def test_refused_requests_are_bad_input_and_overflow_has_its_own_error() -> None:
    refused = httpx.Response(400, json={"error": {"message": "response_format unsupported"}})
    with pytest.raises(BadInput, match="refused the request: response_format unsupported"):
        complete(make_model(Recorder(refused)), USER)
    overflow = httpx.Response(
        400, json={"error": {"message": "too long", "code": "context_length_exceeded"}}
    )
    with pytest.raises(ContextLengthExceeded, match="too long"):
        complete(make_model(Recorder(overflow)), USER)


class TestOpenAIChatModelContract(ChatModelContract):
    """Against kbchat's own /v1/chat/completions (in this process) over a scripted model."""

    @pytest.fixture(scope="class")
    @classmethod
    def model(cls, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChatModel]:
        scripted = ScriptedChatModel([cls.REPLY])
        with in_process_server(tmp_path_factory.mktemp("chat-server"), scripted) as client:
            yield OpenAIChatModel(
                base_url="http://testserver/v1",
                model="qwen2.5-0.5b",
                client=client,  # type: ignore[arg-type]  # TestClient (httpx2) speaks httpx's API
            )
