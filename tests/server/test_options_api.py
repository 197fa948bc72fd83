"""The REST API (422) and the OpenAI API (400) hold the same option bounds as the settings and
the CLI (the table is tests/test_options.py's)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from kbchat.config import Settings
from tests.test_options import CASES, Case

# Where each option is a request field: (endpoint, field) per option setting.
REST = {
    "retrieval.top_k": ("/api/search", "top_k"),
    "retrieval.threshold": ("/api/search", "threshold"),
    "retrieval.mode": ("/api/search", "mode"),
    "chat.top_k": ("/api/chat", "top_k"),
    "chat.no_hit": ("/api/chat", "no_hit"),
    "chat.max_tokens": ("/api/chat", "max_tokens"),
    "ingest.chunk_size": ("/api/kbs", "chunk_size"),
    "ingest.chunk_overlap": ("/api/kbs", "chunk_overlap"),
}
OPENAI = {
    "retrieval.top_k": "top_k",
    "retrieval.threshold": "threshold",
    "chat.max_tokens": "max_tokens",
    "chat.temperature": "temperature",
}


def rest_body(endpoint: str, field: str, value: object) -> dict[str, Any]:
    if endpoint == "/api/kbs":
        return {"name": field.replace("_", "-"), field: value}
    if endpoint == "/api/search":
        return {"kbs": ["docs"], "query": "kettle warranty", field: value}
    # max_tokens at its bound leaves no room for sources: the model alone answers then
    kbs = [] if field == "max_tokens" else ["docs"]
    return {"question": "kettle warranty?", "kbs": kbs, "stream": False, field: value}


def by_setting(table: dict[str, Any]) -> list[Case]:
    return [case for case in CASES if case.setting in table]


@pytest.mark.parametrize("case", by_setting(REST), ids=lambda case: case.setting)
def test_rest_holds_the_bounds(case: Case, client: TestClient, docs_kb: str) -> None:
    endpoint, field = REST[case.setting]
    refused = client.post(endpoint, json=rest_body(endpoint, field, case.outside))
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["message"].startswith(f"invalid request: {field}: ")
    assert case.refusal in refused.json()["error"]["message"]
    accepted = client.post(endpoint, json=rest_body(endpoint, field, case.edge))
    assert accepted.status_code in (200, 201), accepted.text


@pytest.mark.parametrize("case", by_setting(OPENAI), ids=lambda case: case.setting)
def test_openai_holds_the_bounds(
    case: Case, client: TestClient, docs_kb: str, settings: Settings
) -> None:
    field = OPENAI[case.setting]
    model = f"kb:{docs_kb}" if case.setting.startswith("retrieval.") else settings.default_model
    body = {"model": model, "messages": [{"role": "user", "content": "kettle warranty?"}]}
    refused = client.post("/v1/chat/completions", json={**body, field: case.outside})
    assert refused.status_code == 400, refused.text
    error = refused.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == field
    assert case.refusal in error["message"]
    accepted = client.post("/v1/chat/completions", json={**body, field: case.edge})
    assert accepted.status_code == 200, accepted.text


def test_rest_holds_the_summary_strategies(client: TestClient, docs_kb: str) -> None:
    response = client.post(f"/api/kbs/{docs_kb}/summary", json={"strategy": "best"})
    assert response.status_code == 422, response.text
    assert "'auto', 'map-reduce', 'refine' or 'extract'" in response.json()["error"]["message"]


def test_rest_options_stay_strict(client: TestClient, docs_kb: str) -> None:
    """A number in a string is refused, as the schema says (schemathesis checks this too)."""
    response = client.post("/api/search", json={"kbs": [docs_kb], "query": "k", "top_k": "5"})
    assert response.status_code == 422 and "top_k" in response.json()["error"]["message"]


def test_the_schema_documents_the_options_bounds(client: TestClient) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    top_k = schemas["SearchRequest"]["properties"]["top_k"]["anyOf"][0]
    assert (top_k["minimum"], top_k["maximum"]) == (1, 100) and top_k["description"]
    chat_top_k = schemas["ChatRequest"]["properties"]["top_k"]["anyOf"][0]
    openai_top_k = schemas["ChatCompletionRequest"]["properties"]["top_k"]["anyOf"][0]
    assert chat_top_k == openai_top_k == top_k
    mode = schemas["SearchRequest"]["properties"]["mode"]["anyOf"][0]
    assert mode["enum"] == ["hybrid", "dense", "bm25"]
