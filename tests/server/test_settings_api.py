"""The settings editor: admins change the main settings, checked by the options' types,
saved to kbchat.toml with comments kept, and in effect at once."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from kbchat.config import Settings
from kbchat.server import create_app
from kbchat.server.auth import FileKeys, add_key, keys_path
from kbchat.testing.fakes import ScriptedChatModel
from tests.server.support import make_services, make_settings, sse_events

USER_FILE = "# tuned by hand\n[chat]\ntop_k = 5  # keep five\n"


@pytest.fixture
def config(kbchat_home: Path) -> Path:
    kbchat_home.mkdir(parents=True, exist_ok=True)
    path = kbchat_home / "kbchat.toml"
    path.write_text(USER_FILE, encoding="utf-8")
    return path


def test_a_change_is_saved_and_applied_at_once(
    config: Path, client: TestClient, settings: Settings, docs_kb: str, model: ScriptedChatModel
) -> None:
    response = client.put(
        "/api/settings", json={"top_k": 1, "threshold": 0.05, "no_hit": "fallback"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert sorted(body["applied"]) == ["chat.no_hit", "chat.top_k", "retrieval.threshold"]
    assert body["overridden"] == []
    assert body["settings"]["chat"]["top_k"] == 1
    text = config.read_text(encoding="utf-8")
    assert "# tuned by hand" in text and "# keep five" in text
    saved = tomllib.loads(text)
    assert saved["chat"] == {"top_k": 1, "no_hit": "fallback"}
    assert saved["retrieval"] == {"threshold": 0.05}
    assert client.get("/api/settings").json()["chat"]["top_k"] == 1
    assert settings.chat.min_score == 0.0  # the server's other values stay as they were
    events = sse_events(
        client.post("/api/chat", json={"question": "warranty?", "kbs": [docs_kb]}).text
    )
    done = dict(events)["done"]
    assert len(done["citations"]) <= 1  # the new top_k is used by the next answer


def test_embedder_for_new_kbs_and_default_model(config: Path, client: TestClient) -> None:
    response = client.put(
        "/api/settings", json={"embedder": "hash", "default_model": "qwen2.5-0.5b"}
    )
    assert response.status_code == 200, response.text
    saved = tomllib.loads(config.read_text(encoding="utf-8"))
    assert saved["embedder"] == {"backend": "hash"} and saved["default_model"] == "qwen2.5-0.5b"


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"top_k": 0}, 400, "top_k"),
        ({"threshold": 1.5}, 400, "threshold"),
        ({"no_hit": "shrug"}, 400, "no_hit"),
        ({"colour": "blue"}, 400, "colour"),
        ({}, 400, "at least one"),
        ({"default_model": "gpt-9"}, 400, "no model named 'gpt-9'; configured: qwen2.5-0.5b"),
        ({"embedder": "word2vec"}, 400, "unknown embedder 'word2vec'; choose"),
        ({"no_hit": "message"}, 400, "no_hit_message"),
    ],
)
def test_bad_values_are_refused_and_nothing_is_saved(
    config: Path, client: TestClient, body: dict[str, object], status: int, words: str
) -> None:
    response = client.put("/api/settings", json=body)
    assert response.status_code == status, response.text
    assert words in response.text
    assert config.read_text(encoding="utf-8") == USER_FILE


def test_an_environment_override_is_reported(
    config: Path, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KBCHAT_CHAT__TOP_K", "7")
    body = client.put("/api/settings", json={"top_k": 2}).json()
    assert body["overridden"] == ["chat.top_k"] and body["applied"] == []
    assert tomllib.loads(config.read_text(encoding="utf-8"))["chat"]["top_k"] == 2


@pytest.fixture
def secured(config: Path) -> Iterator[tuple[TestClient, dict[str, str]]]:
    settings = make_settings(auth="on")
    path = keys_path(settings)
    keys = {
        "admin": add_key(FileKeys(path), "admin", {"*": "admin"}),
        "writer": add_key(FileKeys(path), "w", {"*": "write"}),
    }
    services = make_services(settings)
    with TestClient(create_app(settings, services=services)) as client:
        yield client, keys
    services.close()


def test_only_admins_change_settings(
    secured: tuple[TestClient, dict[str, str]], config: Path
) -> None:
    client, keys = secured
    assert client.put("/api/settings", json={"top_k": 3}).status_code == 401
    writer = client.put(
        "/api/settings", json={"top_k": 3}, headers={"Authorization": f"Bearer {keys['writer']}"}
    )
    assert writer.status_code == 403
    assert config.read_text(encoding="utf-8") == USER_FILE
    admin = client.put(
        "/api/settings", json={"top_k": 3}, headers={"Authorization": f"Bearer {keys['admin']}"}
    )
    assert admin.status_code == 200
