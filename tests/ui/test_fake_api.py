"""The browser tests' fake API is held to the real API's OpenAPI document (no browser needed)."""

from __future__ import annotations

from contract import ContractCheck
from fake_api import FakeState, build_fake_app
from fastapi.testclient import TestClient


def checked_client(state: FakeState, problems: list[str]) -> TestClient:
    return TestClient(ContractCheck(build_fake_app(state), problems))


def test_the_fake_answers_in_the_real_shapes() -> None:
    state = FakeState(file_delay_s=0.0)
    state.add_kb("manuals", "Device manuals", {"warranty.pdf": 4})
    problems: list[str] = []
    with checked_client(state, problems) as client:
        for path in (
            "/api/health",
            "/api/models",
            "/api/settings",
            "/api/doctor",
            "/api/kbs",
            "/api/kbs/manuals",
            "/api/kbs/manuals/files",
            "/api/conversations",
            "/api/conversations/c1/files",
        ):
            assert client.get(path).status_code == 200, path
        assert client.get("/api/kbs/ghost").status_code == 404
        search = client.post("/api/search", json={"kbs": ["manuals"], "query": "warranty"})
        assert search.json()["hits"]
        chat = client.post("/api/chat", json={"question": "warranty?", "kbs": ["manuals"]})
        assert "event: done" in chat.text
        job = client.post("/api/kbs/manuals/rebuild").json()["job"]
        assert "event: done" in client.get(f"/api/jobs/{job['id']}/events").text
    assert problems == []


def test_a_drifted_fake_fails_the_check() -> None:
    state = FakeState()
    header = {"id": "c1", "title": "Returns", "kbs": [], "created_at": 1.0, "updated_at": 2.0}
    state.conversations["c1"] = {**header, "messages": [], "pinned": True}  # and no "model"
    problems: list[str] = []
    app = build_fake_app(state)
    app.get("/api/stats")(lambda: {"kbs": 1})
    with TestClient(ContractCheck(app, problems)) as client:
        client.get("/api/conversations")
        client.get("/api/stats")
    assert any('"model" is a required property' in p for p in problems), problems
    assert any("'pinned' was unexpected" in p for p in problems), problems
    assert any("GET /api/stats: the real API has no such route" in p for p in problems), problems
