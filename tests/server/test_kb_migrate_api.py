"""POST /api/kbs/{name}/migrate: the REST face of ``kbchat kb migrate``."""

from __future__ import annotations

from fastapi.testclient import TestClient


def search_ids(client: TestClient, query: str) -> list[tuple[str, float]]:
    body = {"kbs": ["docs"], "query": query, "top_k": 5, "threshold": 0.0}
    response = client.post("/api/search", json=body)
    assert response.status_code == 200, response.text
    return [(hit["file"], round(hit["score"], 4)) for hit in response.json()["hits"]]


def test_migrate_switches_the_store_and_keeps_the_results(client: TestClient, docs_kb: str) -> None:
    before = search_ids(client, "warranty")
    moved = client.post(f"/api/kbs/{docs_kb}/migrate", json={"to": "milvus"})
    assert moved.status_code == 200, moved.text
    shown = moved.json()
    assert (shown["source"], shown["target"], shown["source_dropped"]) == (
        "faiss",
        "milvus",
        True,
    )
    assert shown["vectors"] > 0 and shown["queries_compared"] > 0
    assert client.get(f"/api/kbs/{docs_kb}").json()["store"] == "milvus"
    assert search_ids(client, "warranty") == before


def test_migrate_refusals_have_real_statuses(client: TestClient, docs_kb: str) -> None:
    same = client.post(f"/api/kbs/{docs_kb}/migrate", json={"to": "faiss"})
    assert same.status_code == 422 and "already keeps" in same.json()["error"]["message"]
    unknown = client.post(f"/api/kbs/{docs_kb}/migrate", json={"to": "nope"})
    assert unknown.status_code == 400 and "known: faiss" in unknown.json()["error"]["message"]
    missing = client.post("/api/kbs/absent/migrate", json={"to": "milvus"})
    assert missing.status_code == 404
    extra = client.post(f"/api/kbs/{docs_kb}/migrate", json={"to": "milvus", "url": "x"})
    assert extra.status_code == 422
    assert client.get(f"/api/kbs/{docs_kb}").json()["store"] == "faiss"
