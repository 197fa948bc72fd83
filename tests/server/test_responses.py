"""Every response has a documented shape, the server keeps to it, and nothing internal leaks.

Routes answer pydantic shapes (``kbchat.shapes``, ``server.openai_responses``); SSE routes
document their events (``server.streams``). The slow fuzz tests (test_fuzz.py) hold the
JSON responses against the document with generated requests; these hold the rules fast.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from kbchat.cli.main import main
from kbchat.config import load_settings
from kbchat.server.app import public_settings
from kbchat.server.sources_api import FILE_ROUTES
from kbchat.server.streams import STREAMS
from tests.server.openapi_check import OpenAPIContract
from tests.server.support import sse_events, wait_job

NO_CONTENT = {"204"}
DOWNLOADS = {"text/markdown"}
"""Media types of files to download (a conversation's export): text, not a model."""


@pytest.fixture
def document(client: TestClient) -> dict[str, Any]:
    value: dict[str, Any] = client.get("/openapi.json").json()
    return value


@pytest.fixture
def contract(document: dict[str, Any]) -> OpenAPIContract:
    return OpenAPIContract(document)


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def is_shaped(document: dict[str, Any], schema: dict[str, Any]) -> bool:
    """A model (named properties), a list of models, or a choice of models; not a bare dict."""
    schema = resolve(document, schema)
    if "items" in schema:
        return is_shaped(document, schema["items"])
    choices: list[dict[str, Any]] = schema.get("oneOf") or schema.get("anyOf") or []
    if choices:
        return all(is_shaped(document, choice) for choice in choices)
    if "contentSchema" in schema:
        return is_shaped(document, schema["contentSchema"])
    return bool(schema.get("properties")) or "const" in schema


def test_every_route_documents_the_shape_of_its_success(document: dict[str, Any]) -> None:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            where = f"{method.upper()} {path}"
            successes = {s: r for s, r in operation["responses"].items() if s.startswith("2")}
            assert successes, where
            for status, response in successes.items():
                content = response.get("content", {})
                if status in NO_CONTENT:
                    assert not content, where
                    continue
                assert content, f"{where} {status}: no response schema"
                if (method, path.replace("{file}", "{file:path}")) in FILE_ROUTES:
                    assert content == {"*/*": {"schema": {"type": "string", "format": "binary"}}}
                    continue
                for media_type, body in content.items():
                    if media_type in DOWNLOADS:
                        assert body["schema"] == {"type": "string"}, (where, media_type)
                        assert "application/json" in content, f"{where}: a download only"
                        continue
                    assert is_shaped(document, body.get("schema", {})), (where, media_type)
            if (method, path) in STREAMS:
                events = successes["200"]["content"]["text/event-stream"]["schema"]["oneOf"]
                names = {e["properties"]["event"]["const"] for e in events}
                assert names == set(STREAMS[(method, path)]), where
                for event in events:
                    assert is_shaped(document, event["properties"]["data"]), (where, event)


def api_routes(routes: list[Any]) -> list[APIRoute]:
    """The API routes, also those of included routers (FastAPI keeps those apart)."""
    found: list[APIRoute] = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        elif (router := getattr(route, "original_router", None)) is not None:
            found += api_routes(router.routes)
    return found


def test_every_route_declares_a_response_model_or_its_events(client: TestClient) -> None:
    routes = api_routes(client.app.routes)  # type: ignore[attr-defined]
    assert len(routes) > 20
    for route in routes:
        for method in route.methods or ():
            key = (method.lower(), route.path)
            if route.status_code == 204 or not route.include_in_schema:
                continue  # no content; the web page
            assert route.response_model is not None or key in STREAMS or key in FILE_ROUTES, key
    documented = {(m.lower(), r.path) for r in routes for m in r.methods or ()}
    assert set(STREAMS) <= documented, "an SSE route in STREAMS that the app does not serve"


def test_json_responses_match_the_document_exactly(
    client: TestClient, contract: OpenAPIContract, docs_kb: str
) -> None:
    found: list[str] = []
    for path in (
        "/api/health",
        "/api/models",
        "/api/settings",
        "/api/kbs",
        f"/api/kbs/{docs_kb}",
        f"/api/kbs/{docs_kb}/files",
        "/api/jobs",
        "/v1/models",
    ):
        response = client.get(path)
        assert response.status_code == 200, path
        found += contract.check_json("GET", path, 200, response.json())
    search = client.post("/api/search", json={"kbs": [docs_kb], "query": "kettle warranty"})
    assert search.json()["hits"], "the search found nothing to check"
    found += contract.check_json("POST", "/api/search", 200, search.json())
    answer = client.post(
        "/api/chat", json={"question": "warranty?", "kbs": [docs_kb], "stream": False}
    )
    found += contract.check_json("POST", "/api/chat", 200, answer.json())
    conversation = f"/api/conversations/{answer.json()['conversation_id']}"
    found += contract.check_json("GET", conversation, 200, client.get(conversation).json())
    completion = client.post(
        "/v1/chat/completions",
        json={"model": f"kb:{docs_kb}", "messages": [{"role": "user", "content": "warranty?"}]},
    )
    found += contract.check_json("POST", "/v1/chat/completions", 200, completion.json())
    embedded = client.post("/v1/embeddings", json={"model": "default", "input": ["a", "b"]})
    found += contract.check_json("POST", "/v1/embeddings", 200, embedded.json())
    missing = client.get("/api/kbs/nowhere")
    found += contract.check_json("GET", "/api/kbs/nowhere", 404, missing.json())
    assert found == []


def test_streams_send_the_documented_events(
    client: TestClient, contract: OpenAPIContract, docs_kb: str
) -> None:
    found: list[str] = []
    chat = client.post("/api/chat", json={"question": "warranty?", "kbs": [docs_kb]})
    events = sse_events(chat.text)
    assert [name for name, _ in events][-2:] == ["citations", "done"]
    found += contract.check_events("POST", "/api/chat", events)

    job = client.post(f"/api/kbs/{docs_kb}/rebuild").json()["job"]
    wait_job(client, job)
    path = f"/api/jobs/{job['id']}/events"
    found += contract.check_events("GET", path, sse_events(client.get(path).text))

    path = f"/api/kbs/{docs_kb}/summary"
    summary = sse_events(client.post(path, json={}).text)
    assert {"file", "summary", "overview", "done"} <= {name for name, _ in summary}
    found += contract.check_events("POST", path, summary)

    completion = client.post(
        "/v1/chat/completions",
        json={
            "model": f"kb:{docs_kb}",
            "messages": [{"role": "user", "content": "warranty?"}],
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    chunks = sse_events(completion.text)
    assert chunks[-1] == ("message", "[DONE]")
    found += contract.check_events("POST", "/v1/chat/completions", chunks)
    assert found == []


def test_the_contract_check_sees_an_undocumented_field(contract: OpenAPIContract) -> None:
    body = {"status": "ok", "version": "1", "jobs": 0}
    body["generations"] = {"running": 0, "waiting": 0, "slots": 1, "queue_size": 1}
    assert contract.check_json("GET", "/api/health", 200, body) == []
    assert contract.check_json("GET", "/api/health", 200, {**body, "internal": 1})
    assert contract.check_json("GET", "/api/health", 200, {"status": "ok"})
    assert contract.check_events("GET", "/api/jobs/1/events", [("progress", {"id": "1"})])


def test_search_results_carry_no_internal_ranking_key(client: TestClient, docs_kb: str) -> None:
    # Hybrid search sorts by an internal fusion key (Hit.extra["rank_key"]); clients see
    # the relevance score only.
    body = client.post("/api/search", json={"kbs": [docs_kb], "query": "kettle warranty"})
    hits = body.json()["hits"]
    assert hits and all("rank_key" not in hit["extra"] for hit in hits)


def test_cli_json_prints_what_the_api_answers(
    client: TestClient,
    docs_kb: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KBCHAT_EMBEDDER__BACKEND", "hash")

    def cli(*args: str) -> Any:
        try:
            main(list(args))
        except SystemExit as exc:
            assert not exc.code, capsys.readouterr().err
        return json.loads(capsys.readouterr().out)

    assert cli("kb", "list", "--json") == client.get("/api/kbs").json()
    assert cli("kb", "files", docs_kb, "--json") == client.get(f"/api/kbs/{docs_kb}/files").json()
    query = {"kbs": [docs_kb], "query": "kettle warranty", "top_k": 3}
    api_hits = client.post("/api/search", json=query).json()["hits"]
    cli_hits = cli("kb", "search", docs_kb, "kettle warranty", "--top-k", "3", "--json")
    assert cli_hits == api_hits and cli_hits
    assert all("rank_key" not in hit["extra"] for hit in cli_hits)


def test_public_settings_hide_keys_addresses_and_folders() -> None:
    settings = load_settings(
        embedder={"backend": "hash", "api_key": "sk-embed", "base_url": "http://embed.lan"},
        server={"sync_folders": ["/srv/private-docs"]},
        models={"remote": {"backend": "openai", "base_url": "http://llm.lan", "api_key": "sk-m"}},
        default_model="remote",
    )
    shown = public_settings(settings, auth_required=True).model_dump(mode="json")
    text = json.dumps(shown)
    for secret in ("sk-embed", "embed.lan", "private-docs", "llm.lan", "sk-m"):
        assert secret not in text
    assert shown["models"] == {
        "remote": {"backend": "openai", "model": None, "n_ctx": 4096, "parallel": 4}
    }
    assert shown["server"]["auth_required"] is True and "max_body_kb" in shown["server"]
    assert shown["embedder"]["backend"] == "hash" and "batch_size" in shown["embedder"]
