"""LangChain's ChatOpenAI against kbchat: bind_tools and with_structured_output.

The fast tests use the scripted model (the wire format LangChain reads); the slow ones
the embedded Qwen2.5-Coder-0.5B, whose tool calls and JSON come from constrained decoding.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, Field

from kbchat.config import Settings
from kbchat.server.app import create_app
from kbchat.testing.fakes import ScriptedChatModel
from kbchat.types import ToolCall
from tests.server.support import make_services, make_settings

REPO = Path(__file__).resolve().parents[2]


class Person(BaseModel):
    """A person."""

    name: str
    age: int = Field(description="Age in years")


class GetWeather(BaseModel):
    """Current weather in a city."""

    city: str = Field(description="The city")


def chat(client: TestClient, model: str, **options: object) -> ChatOpenAI:
    return ChatOpenAI(
        model=model,
        base_url="http://testserver/v1",
        api_key="unused",
        http_client=client,
        max_retries=0,
        temperature=0,
        **options,
    )


@pytest.fixture
def model() -> ScriptedChatModel:
    call = ToolCall("call_1", "GetWeather", '{"city": "Paris"}')
    return ScriptedChatModel([[call], '{"name": "Ada", "age": 36}'])


def test_bind_tools_gives_langchain_tool_calls(
    client: TestClient, settings: Settings, model: ScriptedChatModel
) -> None:
    llm = chat(client, settings.default_model).bind_tools([GetWeather])
    reply = llm.invoke("What is the weather in Paris?")
    assert reply.tool_calls == [
        {"name": "GetWeather", "args": {"city": "Paris"}, "id": "call_1", "type": "tool_call"}
    ]
    tools = model.params[-1]["tools"]
    assert isinstance(tools, list) and tools[0].name == "GetWeather"
    structured = chat(client, settings.default_model).with_structured_output(Person)
    assert structured.invoke("Who is Ada?") == Person(name="Ada", age=36)
    assert model.params[-1]["response_format"] is not None


@pytest.fixture(scope="module")
def embedded() -> Iterator[object]:
    from kbchat.llm.assemble import ensure_default_model
    from kbchat.llm.llamacpp import LlamaCppChatModel

    cache = Path(os.environ.get("KBCHAT_MODEL_CACHE") or REPO / ".cache" / "models")
    loaded = LlamaCppChatModel(path=ensure_default_model(cache), n_ctx=4096)
    yield loaded
    loaded.close()


@pytest.fixture
def real_client(embedded: object) -> Iterator[TestClient]:
    settings = make_settings()
    services = make_services(settings, embedded)
    with TestClient(create_app(settings, services=services)) as test_client:
        yield test_client
    services.close()


@pytest.mark.slow
@pytest.mark.integration
def test_embedded_model_drives_langchain_tools_and_structured_output(
    real_client: TestClient,
) -> None:
    name = make_settings().default_model
    llm = chat(real_client, name, max_tokens=80)
    reply = llm.bind_tools([GetWeather], tool_choice="GetWeather").invoke(
        "What is the weather in Paris?"
    )
    assert [(c["name"], c["args"]) for c in reply.tool_calls] == [("GetWeather", {"city": "Paris"})]
    person = llm.with_structured_output(Person).invoke("Invent a person named Ada.")
    assert isinstance(person, Person) and person.name
