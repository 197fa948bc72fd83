"""Agent and web modes over the REST API (`tool` events, stored steps) and the OpenAI API
(`agent:` and `web:` models)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from kbchat.config import Settings, load_settings
from kbchat.server import create_app
from kbchat.testing.fakes import ScriptedChatModel
from kbchat.types import ToolCall
from tests.chat.test_web import server as search_server  # noqa: F401 (fixture)
from tests.server.support import DOCS, NO_ANSWER_BAR, make_services, sse_events, upload


def agent_settings(**extra: Any) -> Settings:
    return load_settings(
        embedder={"backend": "hash"}, chat=NO_ANSWER_BAR, agent={"router": "model"}, **extra
    )


def calls(*names_and_arguments: tuple[str, dict[str, Any]]) -> list[ToolCall]:
    return [
        ToolCall(f"c{i}", name, json.dumps(a)) for i, (name, a) in enumerate(names_and_arguments)
    ]


@pytest.fixture
def agent_client() -> Iterator[tuple[TestClient, ScriptedChatModel]]:
    settings = agent_settings()
    model = ScriptedChatModel(
        [calls(("calculator", {"expression": "399 * 2"})), "Two cost 798 yuan."]
    )
    services = make_services(settings, model)
    with TestClient(create_app(settings, services=services)) as client:
        yield client, model
    services.close()


def test_agent_mode_streams_tool_steps_and_keeps_them(
    agent_client: tuple[TestClient, ScriptedChatModel],
) -> None:
    client, _ = agent_client
    response = client.post("/api/chat", json={"question": "What is 399 times 2?", "mode": "agent"})
    assert response.status_code == 200
    events = sse_events(response.text)
    names = [name for name, _ in events]
    assert names[:2] == ["tool", "tool"] and names[-1] == "done"
    start, end = events[0][1], events[1][1]
    assert start["tool"] == "calculator" and not start["done"]
    assert end["done"] and end["result"] == "399 * 2 = 798" and end["ms"] is not None
    done = events[-1][1]
    assert done["answer"] == "Two cost 798 yuan." and done["tool_steps"][0]["tool"] == "calculator"
    stored = client.get(f"/api/conversations/{done['conversation_id']}").json()["messages"]
    assert stored[1]["tool_steps"][0]["result"] == "399 * 2 = 798"


def test_agent_search_covers_only_what_the_caller_may_read(tmp_path: Any) -> None:
    from kbchat.server.auth import FileKeys, add_key, keys_path

    settings = load_settings(
        embedder={"backend": "hash"},
        chat=NO_ANSWER_BAR,
        agent={"router": "model"},
        server={"auth": "on"},
    )
    admin = add_key(FileKeys(keys_path(settings)), "admin", {"*": "admin"})
    reader = add_key(FileKeys(keys_path(settings)), "reader", {"public": "read"})
    model = ScriptedChatModel(
        [calls(("kb_search", {"query": "kettle warranty", "kb": "docs"})), "x"]
    )
    services = make_services(settings, model)
    with TestClient(create_app(settings, services=services)) as client:
        client.headers["Authorization"] = f"Bearer {admin}"
        for name in ("docs", "public"):
            assert client.post("/api/kbs", json={"name": name}).status_code == 201
        upload(client, "docs", DOCS)
        client.headers["Authorization"] = f"Bearer {reader}"
        body = {"question": "What does the kettle warranty say?", "mode": "agent", "stream": False}
        answer = client.post("/api/chat", json=body).json()
    step = answer["tool_steps"][0]
    assert step["error"] is None and "kettle.txt" not in step["result"]  # nothing from docs
    assert step["result"].startswith("There is no knowledge base named 'docs'; used public.")
    services.close()


def test_openai_agent_model(agent_client: tuple[TestClient, ScriptedChatModel]) -> None:
    client, _ = agent_client
    models = {m["id"]: m for m in client.get("/v1/models").json()["data"]}
    assert models["agent:default"]["kind"] == "agent" and "web:default" not in models
    request = {"model": "agent:default", "messages": [{"role": "user", "content": "399*2?"}]}
    completion = client.post("/v1/chat/completions", json=request).json()
    assert completion["choices"][0]["message"]["content"] == "Two cost 798 yuan."
    assert completion["tool_steps"][0]["result"] == "399 * 2 = 798"
    unknown = client.post("/v1/chat/completions", json={**request, "model": "agent:nope"})
    assert unknown.status_code == 404 and "agent:default" in unknown.text
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    refused = client.post("/v1/chat/completions", json={**request, "tools": tools})
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "tools"


def test_web_mode_and_web_models_answer_from_search(search_server: str) -> None:  # noqa: F811
    settings = agent_settings(web_search={"providers": [{"kind": "searxng", "url": search_server}]})
    model = ScriptedChatModel(["The Ares rover landed in Jezero crater [1]."])
    services = make_services(settings, model)
    with TestClient(create_app(settings, services=services)) as client:
        body = {"question": "Where did the Ares rover land?", "mode": "web", "stream": False}
        answer = client.post("/api/chat", json=body).json()
        assert answer["citations"][0]["kb"] == "web"
        assert answer["citations"][0]["file"].endswith("/article.html")
        request = {
            "model": "web:default",
            "messages": [{"role": "user", "content": body["question"]}],
        }
        completion = client.post("/v1/chat/completions", json=request).json()
        assert completion["citations"][0]["file"].endswith("/article.html")
        assert any(m["id"] == "web:default" for m in client.get("/v1/models").json()["data"])
    services.close()


def test_agent_tools_are_listed_with_their_source(
    agent_client: tuple[TestClient, ScriptedChatModel],
) -> None:
    client, _ = agent_client
    tools = {t["name"]: t for t in client.get("/api/agent/tools").json()}
    assert {"kb_search", "calculator", "current_time", "sheet_sql", "summarize_file"} <= set(tools)
    assert tools["calculator"]["source"] == "builtin" and tools["calculator"]["description"]


def test_named_agents_are_models_with_their_own_tools() -> None:
    settings = agent_settings(agents={"maths": {"tools": ["calculator"]}})
    model = ScriptedChatModel([calls(("calculator", {"expression": "6 * 7"})), "Forty-two."])
    services = make_services(settings, model)
    with TestClient(create_app(settings, services=services)) as client:
        listed = [m["id"] for m in client.get("/v1/models").json()["data"]]
        assert "agent:maths" in listed
        request = {"model": "agent:maths", "messages": [{"role": "user", "content": "6*7?"}]}
        completion = client.post("/v1/chat/completions", json=request).json()
        assert completion["tool_steps"][0]["result"] == "6 * 7 = 42"
        assert [t.name for t in model.params[0]["tools"]] == ["calculator"]  # type: ignore[attr-defined]
    services.close()
