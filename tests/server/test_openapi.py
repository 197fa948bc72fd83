"""The OpenAPI description says what the server does: statuses, error bodies, names, methods.

The slow tests in test_fuzz.py hold the whole description against generated requests
(`schemathesis run --checks all`); these hold its parts fast, one rule at a time.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from kbchat.kb.library import KB_NAME_PATTERN

CHAT_ROUTES = {("post", "/api/chat"), ("post", "/v1/chat/completions")}
OPEN_ROUTES = {("get", "/api/health")}  # probes need no key


@pytest.fixture
def schema(client: TestClient) -> dict[str, Any]:
    document: dict[str, Any] = client.get("/openapi.json").json()
    return document


def operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
    ]


def test_every_route_documents_the_errors_it_can_answer(schema: dict[str, Any]) -> None:
    for method, path, operation in operations(schema):
        documented = set(operation["responses"])
        where = f"{method.upper()} {path}"
        if (method, path) not in OPEN_ROUTES:
            assert "401" in documented, where
        if "{" in path:
            assert "404" in documented, where
        if "requestBody" in operation:
            # the editors' routes answer invalid values with 400 (BadRequestRoute), others 422
            assert "413" in documented and ({"400", "422"} & documented), where
        if (method, path) in CHAT_ROUTES:
            assert {"429", "503"} <= documented, where
            for status in ("429", "503"):
                assert "Retry-After" in operation["responses"][status]["headers"], where
        for status, response in operation["responses"].items():
            if status.startswith(("4", "5")):
                body = response["content"]["application/json"]["schema"]["$ref"]
                expected = "OpenAIErrorBody" if path.startswith("/v1/") else "ErrorBody"
                assert body.endswith(f"/{expected}"), (where, status, body)


def test_writes_and_admin_routes_document_403(schema: dict[str, Any]) -> None:
    for method, path, operation in operations(schema):
        writes = path.startswith("/api/kbs") and method in ("post", "delete")
        if writes or path == "/api/doctor":
            assert "403" in operation["responses"], f"{method.upper()} {path}"


def test_error_bodies_match_their_documented_shape(client: TestClient) -> None:
    rest = client.get("/api/kbs/nowhere")
    assert set(rest.json()["error"]) == {"type", "message", "status"}
    openai = client.post("/v1/embeddings", json={"model": "nowhere", "input": "x"})
    assert openai.status_code == 404
    assert set(openai.json()["error"]) == {"message", "type", "code", "param"}


def test_the_kb_name_rule_is_in_the_schema(schema: dict[str, Any], client: TestClient) -> None:
    create = schema["components"]["schemas"]["CreateKB"]["properties"]["name"]
    assert create["pattern"] == KB_NAME_PATTERN and create["maxLength"] == 64
    for method, path, operation in operations(schema):
        for parameter in operation.get("parameters", []):
            if parameter["name"] in ("name", "kb"):
                assert parameter["schema"].get("pattern") == KB_NAME_PATTERN or any(
                    option.get("pattern") == KB_NAME_PATTERN
                    for option in parameter["schema"].get("anyOf", [])
                ), f"{method.upper()} {path} {parameter['name']}"
    for name in ("a..b", ".hidden", "-dash", "two words"):
        refused = client.get(f"/api/kbs/{name}")
        assert refused.status_code == 422, name
        assert "invalid knowledge base name" in refused.json()["error"]["message"]
    too_long = client.get(f"/api/kbs/{'x' * 65}")
    assert too_long.status_code == 422 and "64" in too_long.json()["error"]["message"]
    for name in ("知识库", "v1.2", "a_b-c"):
        assert re.fullmatch(KB_NAME_PATTERN, name)
        assert client.post("/api/kbs", json={"name": name}).status_code == 201


def test_allow_lists_every_method_of_a_path(schema: dict[str, Any], client: TestClient) -> None:
    for path, item in schema["paths"].items():
        concrete = path.replace("{name}", "docs").replace("{file}", "kettle.txt")
        concrete = re.sub(r"\{\w+\}", "x", concrete)
        response = client.options(concrete)
        assert response.status_code == 405, path
        allowed = {m.strip() for m in response.headers["allow"].split(",")}
        assert allowed == {m.upper() for m in item}, path


def test_numbers_and_flags_are_not_coerced(client: TestClient, docs_kb: str) -> None:
    search = {"kbs": ["docs"], "query": "kettle"}
    for field, value in (("threshold", False), ("top_k", True), ("top_k", "3"), ("top_k", 2.5)):
        refused = client.post("/api/search", json={**search, field: value})
        assert refused.status_code == 422, (field, value)
    assert client.post("/api/chat", json={"question": "q", "stream": "no"}).status_code == 422
    assert client.post("/api/search", json={**search, "threshold": 0}).status_code == 200


def test_an_unreadable_body_is_refused_naming_the_content_type(client: TestClient) -> None:
    # The REST API answers 422; the OpenAI API answers 400, as OpenAI does (the SDK raises
    # BadRequestError).
    for path, status in (("/api/search", 422), ("/v1/embeddings", 400)):
        response = client.post(
            path, content=b"\xff\xfe{not json", headers={"content-type": "application/json"}
        )
        assert response.status_code == status, path
        assert "application/json" in response.json()["error"]["message"]


def test_no_hit_message_comes_with_its_text(client: TestClient, docs_kb: str) -> None:
    refused = client.post("/api/chat", json={"question": "q", "no_hit": "message"})
    assert refused.status_code == 422 and "no_hit_message" in refused.json()["error"]["message"]
    answered = client.post(
        "/api/chat",
        json={
            "question": "What colour is the moon?",
            "kbs": ["docs"],
            "no_hit": "message",
            "no_hit_message": "Not in our manuals.",
            "threshold": 1,
            "stream": False,
        },
    )
    assert answered.status_code == 200 and answered.json()["answer"] == "Not in our manuals."
    rule = client.get("/openapi.json").json()["components"]["schemas"]["ChatRequest"]
    assert rule["if"]["properties"]["no_hit"] == {"const": "message"}
    assert rule["then"]["required"] == ["no_hit_message"]


def test_a_query_parameter_given_twice_is_refused(client: TestClient) -> None:
    response = client.get("/api/jobs?kb=a..b&kb=docs")
    assert response.status_code == 422 and "kb given more than once" in response.text
    assert client.get("/api/jobs?kb=docs").status_code == 200
