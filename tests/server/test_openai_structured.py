"""Structured output, tool calls and refusals on /v1, driven by the official ``openai`` client."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel

from kbchat.config import Settings
from kbchat.llm.base import ForcedTool, ResponseFormat
from kbchat.testing.fakes import ScriptedChatModel
from kbchat.types import Message, ToolCall, ToolSpec

WEATHER_PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": WEATHER_PARAMETERS,
    },
}
CALL = ToolCall("call_abc", "get_weather", '{"city": "Paris"}')
ASK = [{"role": "user", "content": "Weather in Paris?"}]


def untyped(client: openai.OpenAI) -> Any:
    """The client without its request types: these tests send plain dicts, some invalid."""
    return client


class Person(BaseModel):
    name: str
    age: int


@pytest.fixture
def model() -> ScriptedChatModel:
    return ScriptedChatModel([[CALL], "It is sunny in Paris.", '{"name": "Ada", "age": 36}'])


@pytest.fixture
def oai(client: TestClient) -> openai.OpenAI:
    return openai.OpenAI(
        base_url="http://testserver/v1", api_key="unused", http_client=client, max_retries=0
    )


def test_tool_call_round_trip(
    oai: openai.OpenAI, settings: Settings, model: ScriptedChatModel
) -> None:
    first = untyped(oai).chat.completions.create(
        model=settings.default_model,
        messages=ASK,
        tools=[WEATHER],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        parallel_tool_calls=False,
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (call,) = choice.message.tool_calls or []
    assert (call.id, call.function.name, call.function.arguments) == (
        "call_abc",
        "get_weather",
        '{"city": "Paris"}',
    )
    params = model.params[-1]
    assert params["tools"] == [ToolSpec("get_weather", "Weather in a city", WEATHER_PARAMETERS)]
    assert params["tool_choice"] == ForcedTool("get_weather")
    assert params["parallel_tool_calls"] is False
    answer = untyped(oai).chat.completions.create(
        model=settings.default_model,
        messages=[
            *ASK,
            choice.message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 22 C"},
        ],
        tools=[WEATHER],
    )
    assert answer.choices[0].message.content == "It is sunny in Paris."
    assert answer.choices[0].finish_reason == "stop"
    assert model.received[-1][1:] == [
        Message("assistant", "", tool_calls=(CALL,)),
        Message("tool", "Sunny, 22 C", tool_call_id="call_abc"),
    ]


def test_streamed_tool_calls(oai: openai.OpenAI, settings: Settings) -> None:
    chunks = list(
        untyped(oai).chat.completions.create(
            model=settings.default_model,
            messages=ASK,
            tools=[WEATHER],
            stream=True,
        )
    )
    calls = [
        c for chunk in chunks if chunk.choices for c in chunk.choices[0].delta.tool_calls or ()
    ]
    assert [(c.index, c.id, c.function.name) for c in calls] == [(0, "call_abc", "get_weather")]
    assert json.loads(calls[0].function.arguments) == {"city": "Paris"}
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "tool_calls"


def test_json_schema_through_the_sdk_parse_helper(
    oai: openai.OpenAI, settings: Settings, model: ScriptedChatModel
) -> None:
    model.replies = ['{"name": "Ada", "age": 36}']
    parsed = oai.chat.completions.parse(
        model=settings.default_model,
        messages=[{"role": "user", "content": "Ada?"}],
        response_format=Person,
    )
    assert parsed.choices[0].message.parsed == Person(name="Ada", age=36)
    sent = model.params[-1]["response_format"]
    assert isinstance(sent, ResponseFormat) and sent.type == "json_schema" and sent.strict
    assert sent.schema is not None and sent.schema["required"] == ["name", "age"]
    untyped(oai).chat.completions.create(
        model=settings.default_model,
        messages=[{"role": "user", "content": "Ada?"}],
        response_format={"type": "json_object"},
    )
    assert model.params[-1]["response_format"] == ResponseFormat("json_object")


def test_backend_that_cannot_is_refused_naming_the_field(
    oai: openai.OpenAI, settings: Settings, model: ScriptedChatModel
) -> None:
    model.capabilities = frozenset()
    with pytest.raises(openai.BadRequestError, match="does not support response_format") as info:
        untyped(oai).chat.completions.create(
            model=settings.default_model,
            messages=ASK,
            response_format={"type": "json_object"},
        )
    assert info.value.param == "response_format" and info.value.code == "unsupported_parameter"
    with pytest.raises(openai.BadRequestError, match="does not support tools"):
        untyped(oai).chat.completions.create(
            model=settings.default_model,
            messages=ASK,
            tools=[WEATHER],
        )
    assert model.received == []  # refused before any generation


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"n": 2}, "n"),
        ({"logit_bias": {"42": 5}}, "logit_bias"),
        ({"seed": 7}, "seed"),
        ({"top_p": 0.5}, "top_p"),
        ({"stream_options": {"include_obfuscation": True}}, "stream_options"),
        ({"frobnicate": 1}, "frobnicate"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"messages": [{"role": "user", "content": "x", "name": "bob"}]}, "messages.0.name"),
    ],
)
def test_unsupported_fields_are_400s_naming_the_field(
    client: TestClient, settings: Settings, extra: dict[str, object], param: str
) -> None:
    body = {"model": settings.default_model, "messages": ASK, **extra}
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error"
    assert param.split(".")[-1] in error["message"]


def test_neutral_values_of_unsupported_fields_are_accepted(
    oai: openai.OpenAI, settings: Settings, model: ScriptedChatModel
) -> None:
    model.replies = ["fine"]
    done = untyped(oai).chat.completions.create(
        model=settings.default_model,
        messages=ASK,
        n=1,
        top_p=1,
        presence_penalty=0,
        logprobs=False,
        user="u-1",
    )
    assert done.choices[0].message.content == "fine"


def test_prompt_longer_than_the_context_is_context_length_exceeded(
    oai: openai.OpenAI, settings: Settings, model: ScriptedChatModel
) -> None:
    model.context_window = 300
    with pytest.raises(openai.BadRequestError) as info:
        untyped(oai).chat.completions.create(
            model=settings.default_model,
            messages=[{"role": "user", "content": "很长的背景材料。" * 200}],
        )
    assert info.value.code == "context_length_exceeded" and info.value.param == "messages"
    assert "300-token context" in info.value.message


def test_embeddings_take_token_ids_as_langchain_sends_them(client: TestClient) -> None:
    def vectors(given: object) -> list[list[float]]:
        response = client.post("/v1/embeddings", json={"model": "default", "input": given})
        assert response.status_code == 200, response.text
        return [item["embedding"] for item in response.json()["data"]]

    hello_world = [15339, 1917]  # "hello world" in cl100k_base
    assert vectors(hello_world) == vectors(["hello world"])
    assert vectors([hello_world, [15339]]) == vectors(["hello world", "hello"])
    for bad in ([[15339], []], [[15339], "hello"], [[2**40]]):
        response = client.post("/v1/embeddings", json={"model": "default", "input": bad})
        assert response.status_code == 400, bad
        assert str(response.json()["error"]["param"]).startswith("input"), bad


def test_kb_model_honours_stop_and_system_and_refuses_tools(
    oai: openai.OpenAI, docs_kb: str, model: ScriptedChatModel
) -> None:
    model.replies = ["The K3 kettle warranty is two years [1]."]
    done = untyped(oai).chat.completions.create(
        model=f"kb:{docs_kb}",
        stop=["two"],
        messages=[
            {"role": "system", "content": "Answer like a pirate."},
            {"role": "user", "content": "How long is the kettle warranty?"},
        ],
    )
    assert done.choices[0].message.content is not None
    assert "two" not in done.choices[0].message.content
    assert done.choices[0].message.content.startswith("The K3 kettle warranty is")
    assert model.params[-1]["stop"] == ("two",)
    system = model.received[-1][0]
    assert system.role == "system" and system.content.endswith("Answer like a pirate.")
    with pytest.raises(openai.BadRequestError, match="tools is not supported for kb:") as info:
        untyped(oai).chat.completions.create(
            model=f"kb:{docs_kb}",
            messages=ASK,
            tools=[WEATHER],
        )
    assert info.value.param == "tools"
