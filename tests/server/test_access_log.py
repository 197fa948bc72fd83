"""One log line per request and per answer, with the caller's key name and never the key."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from kbchat.logging import configure_logging
from kbchat.server import create_app
from kbchat.server.auth import FileKeys, add_key, keys_path
from tests.server.support import DOCS, make_services, make_settings, upload


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging("INFO", "json", stream=stream)
    yield stream
    root = logging.getLogger()
    for handler in [h for h in root.handlers if type(h).__name__ == "_KbchatHandler"]:
        root.removeHandler(handler)
    root.setLevel(logging.WARNING)


def _records(stream: io.StringIO, message: str) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in stream.getvalue().splitlines()]
    return [row for row in rows if row["message"] == message]


def test_requests_and_answers_are_logged_without_keys(lines: io.StringIO) -> None:
    settings = make_settings(host="0.0.0.0")
    key = add_key(FileKeys(keys_path(settings)), "alice", {"*": "admin"})
    services = make_services(settings)
    headers = {"Authorization": f"Bearer {key}"}
    with TestClient(create_app(settings, services=services)) as client:
        assert client.post("/api/kbs", json={"name": "docs"}, headers=headers).status_code == 201
        upload(client, "docs", DOCS, headers=headers)
        assert client.get(f"/api/kbs?api_key={key}", headers=headers).status_code == 200
        assert client.get("/api/kbs", headers={"Authorization": "Bearer wrong"}).status_code == 401
        answer = client.post(
            "/api/chat",
            json={"question": "kettle warranty?", "kbs": ["docs"], "stream": False},
            headers=headers,
        )
        assert answer.status_code == 200
    services.close()
    text = lines.getvalue()
    assert key not in text and key[4:20] not in text
    requests = _records(lines, "request")
    created = requests[0]
    assert created["method"] == "POST" and created["path"] == "/api/kbs"
    assert created["status"] == 201 and created["caller"] == "alice" and created["ms"] >= 0
    listed = [r for r in requests if r["path"] == "/api/kbs" and r["method"] == "GET"]
    assert [(r["status"], r["caller"]) for r in listed] == [(200, "alice"), (401, "-")]
    assert any(r["path"] == "/api/chat" and r["status"] == 200 for r in requests)
    (logged,) = _records(lines, "answer")
    assert logged["kbs"] == ["docs"] and logged["mode"] == "hybrid" and logged["hits"] >= 1
    assert logged["outcome"] in ("answered", "refused")
    assert {"retrieval_ms", "ttft_ms", "completion_tokens"} <= set(logged)
