"""POST /api/kbs/{kb}/summary: streamed summaries, kept per file, and an overview."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from kbchat.server import create_app
from kbchat.testing.fakes import ScriptedChatModel
from tests.chat.test_summary_jobs import GatedModel
from tests.server.support import DOCS, make_services, make_settings, sse_events, upload


def summarise(client: TestClient, kb: str, **body: object) -> list[tuple[str, Any]]:
    response = client.post(f"/api/kbs/{kb}/summary", json=body)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    return sse_events(response.text)


def test_every_file_then_an_overview_streams_and_is_kept(
    client: TestClient, docs_kb: str, model: ScriptedChatModel
) -> None:
    events = summarise(client, docs_kb)
    names = [name for name, _ in events]
    assert names[0] == "file" and names[-1] == "done" and "overview" in names
    summaries = {data["file"]: data for name, data in events if name == "summary"}
    assert set(summaries) == {"kettle.txt", "tea.md"}
    assert all(not s["cached"] for s in summaries.values())
    deltas = "".join(d["text"] for n, d in events if n == "delta" and d["file"] == "tea.md")
    assert deltas == summaries["tea.md"]["summary"]
    plan = next(d for n, d in events if n == "progress")
    assert plan["stage"] == "plan" and plan["estimated_s"] > 0
    listed = client.get(f"/api/kbs/{docs_kb}/files").json()
    assert {f["name"]: f["summary"] for f in listed} == {
        name: s["summary"] for name, s in summaries.items()
    }
    calls = len(model.received)
    again = summarise(client, docs_kb, files=["tea.md"])
    kept = next(d for n, d in again if n == "summary")
    assert kept["cached"] and len(model.received) == calls
    assert "overview" not in [n for n, _ in again]


def test_unknown_files_and_strategies_fail_before_the_stream(
    client: TestClient, docs_kb: str
) -> None:
    response = client.post(f"/api/kbs/{docs_kb}/summary", json={"files": ["nope.txt"]})
    assert response.status_code == 404 and "nope.txt" in response.text
    response = client.post(f"/api/kbs/{docs_kb}/summary", json={"strategy": "magic"})
    assert response.status_code == 422
    response = client.post("/api/kbs/missing/summary", json={})
    assert response.status_code == 404


def test_an_overview_question_is_answered_from_the_summaries_in_every_api(
    client: TestClient, docs_kb: str, model: ScriptedChatModel
) -> None:
    events = summarise(client, docs_kb)
    overview = next(d for n, d in events if n == "overview")["summary"]
    calls = len(model.received)
    reply = client.post(
        "/api/chat",
        json={"question": "What is this knowledge base about?", "kbs": [docs_kb], "stream": False},
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["answer"] == overview
    assert {c["file"] for c in reply.json()["citations"]} == {"kettle.txt", "tea.md"}
    completion = client.post(
        "/v1/chat/completions",
        json={
            "model": f"kb:{docs_kb}",
            "messages": [{"role": "user", "content": "这个知识库讲了什么"}],
        },
    )
    assert completion.status_code == 200, completion.text
    body = completion.json()
    assert body["choices"][0]["message"]["content"] == overview
    assert {c["file"] for c in body["citations"]} == {"kettle.txt", "tea.md"}
    assert len(model.received) == calls  # the kept overview: no model call


def test_an_overview_question_names_the_files_without_a_summary(
    client: TestClient, docs_kb: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("kbchat.chat.overview.MAX_NEW", 1)
    reply = client.post(
        "/api/chat",
        json={"question": "What is in this kb?", "kbs": [docs_kb], "stream": False},
    )
    assert reply.status_code == 200, reply.text
    answer = reply.json()
    assert len(answer["citations"]) == 1
    assert "No summary yet for 1 file: tea.md" in answer["answer"]


def finished_job(client: TestClient, kb: str, job_id: str) -> dict[str, Any]:
    for _ in range(2000):  # bounded polling of a background job, as a client would
        job: dict[str, Any] = client.get(f"/api/kbs/{kb}/summary/jobs/{job_id}").json()
        if job["status"] != "running":
            return job
    raise AssertionError("summary job did not finish")


def test_a_summary_job_runs_in_the_background_file_by_file(
    client: TestClient, docs_kb: str
) -> None:
    started = client.post(f"/api/kbs/{docs_kb}/summary/jobs", json={})
    assert started.status_code == 202, started.text
    job = started.json()
    assert job["estimated_s"] > 0 and {f["file"] for f in job["files"]} == {"kettle.txt", "tea.md"}
    done = finished_job(client, docs_kb, job["id"])
    assert done["status"] == "done" and done["overview"]
    assert all(f["status"] == "done" and f["strategy"] for f in done["files"])
    listed = client.get(f"/api/kbs/{docs_kb}/summary/jobs").json()
    assert [j["id"] for j in listed] == [job["id"]]
    kept = client.get(f"/api/kbs/{docs_kb}/files").json()
    assert all(f["summary"] for f in kept)
    again = client.post(f"/api/kbs/{docs_kb}/summary/jobs", json={"files": ["tea.md"]}).json()
    assert again["estimated_s"] == 0  # kept: nothing to make


def test_a_summary_job_can_be_stopped() -> None:
    settings = make_settings()
    model = GatedModel(["Never made."])  # holds every model call until stopped
    services = make_services(settings, model)
    try:
        with TestClient(create_app(settings, services=services)) as client:
            assert client.post("/api/kbs", json={"name": "docs"}).status_code == 201
            upload(client, "docs", DOCS)
            job = client.post("/api/kbs/docs/summary/jobs", json={}).json()
            stopping = client.delete(f"/api/kbs/docs/summary/jobs/{job['id']}")
            assert stopping.status_code == 202
            done = finished_job(client, "docs", job["id"])
            assert done["status"] == "cancelled" and done["overview"] is None
            assert {f["status"] for f in done["files"]} == {"cancelled"}
            assert all(f["summary"] is None for f in client.get("/api/kbs/docs/files").json())
    finally:
        services.close()


def test_summary_job_errors(client: TestClient, docs_kb: str) -> None:
    missing = client.post(f"/api/kbs/{docs_kb}/summary/jobs", json={"files": ["nope.txt"]})
    assert missing.status_code == 404 and "nope.txt" in missing.text
    unknown = client.delete(f"/api/kbs/{docs_kb}/summary/jobs/abc")
    assert unknown.status_code == 404 and "no summary job 'abc'" in unknown.text
    assert client.get("/api/kbs/nokb/summary/jobs").status_code == 404
    assert client.post("/api/kbs/nokb/summary/jobs", json={}).status_code == 404
