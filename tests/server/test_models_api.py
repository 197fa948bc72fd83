"""The models view's API: add a local GGUF, pull one from a hub mirror on loopback with its
progress, admins only; saved to kbchat.toml and usable by the running server at once."""

from __future__ import annotations

import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from kbchat.app import build
from kbchat.config import load_settings
from kbchat.server.app import create_app
from kbchat.server.auth import hash_key
from kbchat.testing.fakes import ScriptedChatModel
from tests.llm.hf_mirror import Mirror, serve_mirror
from tests.llm.tiny_gguf import write_tiny_gguf

KEYS = [
    {"name": "boss", "sha256": hash_key("boss-key"), "permissions": {"*": "admin"}},
    {"name": "reader", "sha256": hash_key("read-key"), "permissions": {"*": "read"}},
]
BOSS = {"Authorization": "Bearer boss-key"}
READER = {"Authorization": "Bearer read-key"}


@pytest.fixture
def client(kbchat_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    # Pulls land in this home's model folder: a shared cache (CI sets KBCHAT_MODEL_CACHE) may
    # already hold the file another test pulled, and then nothing is downloaded to watch.
    monkeypatch.setenv("KBCHAT_MODEL_CACHE", str(kbchat_home / "models"))
    settings = load_settings(embedder={"backend": "hash"}, server={"auth": "on", "api_keys": KEYS})
    services = build(settings)
    services.models.add(settings.default_model, ScriptedChatModel(["OK"]))
    with TestClient(create_app(settings, services=services)) as test_client:
        yield test_client
    services.close()


def saved(kbchat_home: Path) -> dict[str, Any]:
    return tomllib.loads((kbchat_home / "kbchat.toml").read_text(encoding="utf-8"))


def listed(client: TestClient) -> dict[str, dict[str, Any]]:
    return {m["name"]: m for m in client.get("/api/models", headers=READER).json()}


def test_an_admin_adds_a_local_gguf_and_it_is_listed_and_saved(
    client: TestClient, kbchat_home: Path, tmp_path: Path
) -> None:
    gguf = write_tiny_gguf(tmp_path / "tiny-q4.gguf")
    body = {"name": "tiny", "path": str(gguf), "n_ctx": 1024, "default": True}
    assert client.post("/api/models", json=body, headers=READER).status_code == 403
    added = client.post("/api/models", json=body, headers=BOSS)
    assert added.status_code == 201, added.text
    assert added.json()["quantisation"] == "Q4_K_M" and added.json()["n_ctx"] == 1024
    assert added.json()["default"] is True
    assert listed(client)["tiny"]["default"] is True
    assert client.get("/api/settings", headers=READER).json()["default_model"] == "tiny"
    stored = saved(kbchat_home)
    assert stored["models"]["tiny"] == {"backend": "llamacpp", "path": str(gguf), "n_ctx": 1024}
    assert "qwen2.5-0.5b" in stored["models"]  # the models configured before are kept


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"name": "tiny", "path": "/nowhere/x.gguf"}, "path: no file '/nowhere/x.gguf'"),
        ({"name": "qwen2.5-0.5b", "path": "GGUF"}, "a model named 'qwen2.5-0.5b' exists"),
        ({"name": "has space", "path": "GGUF"}, "name: a model name is 1-64 letters"),
        ({"name": "tiny", "path": ""}, "path"),
        ({"name": "tiny", "path": "NOT-GGUF"}, "not-a-model.txt"),
    ],
)
def test_a_bad_model_is_refused_with_a_message_naming_the_field(
    client: TestClient, kbchat_home: Path, tmp_path: Path, body: dict[str, str], words: str
) -> None:
    gguf = write_tiny_gguf(tmp_path / "tiny-q4.gguf")
    text = tmp_path / "not-a-model.txt"
    text.write_text("hello", encoding="utf-8")
    path = {"GGUF": str(gguf), "NOT-GGUF": str(text)}.get(body["path"], body["path"])
    refused = client.post("/api/models", json={**body, "path": path}, headers=BOSS)
    assert refused.status_code == 400, refused.text
    assert words in refused.json()["error"]["message"]
    assert not (kbchat_home / "kbchat.toml").exists()


def wait_for(client: TestClient, pull_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        pull: dict[str, Any] = client.get(f"/api/models/pulls/{pull_id}", headers=BOSS).json()
        if pull["status"] != "running" or time.monotonic() > deadline:
            return pull
        time.sleep(0.05)


@pytest.mark.parametrize("source", ["huggingface", "modelscope"])
def test_a_pull_reports_progress_and_adds_the_model(
    client: TestClient,
    kbchat_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    source: str,
) -> None:
    weights = write_tiny_gguf(tmp_path / "w.gguf").read_bytes()
    with serve_mirror(Mirror({"owner/tiny-GGUF": {"tiny-q4_k_m.gguf": weights}})) as mirror:
        monkeypatch.setenv("HF_ENDPOINT", mirror.url)
        monkeypatch.setenv("MODELSCOPE_ENDPOINT", mirror.url)
        body = {"reference": "owner/tiny-GGUF", "source": source, "name": "pulled"}
        assert client.post("/api/models/pulls", json=body, headers=READER).status_code == 403
        started = client.post("/api/models/pulls", json=body, headers=BOSS)
        assert started.status_code == 202, started.text
        pull = wait_for(client, started.json()["id"])
    assert pull["status"] == "done", pull
    assert pull["done_bytes"] == pull["total_bytes"] == len(weights)
    assert pull["model"] == "pulled" and listed(client)["pulled"]["quantisation"] == "Q4_K_M"
    assert saved(kbchat_home)["models"]["pulled"]["path"].endswith("tiny-q4_k_m.gguf")
    listing = client.get("/api/models/pulls", headers=BOSS).json()
    assert [p["id"] for p in listing] == [pull["id"]]


def test_a_failed_pull_says_why(
    client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with serve_mirror(Mirror({"owner/tiny": {}})) as mirror:
        monkeypatch.setenv("MODELSCOPE_ENDPOINT", mirror.url)
        body = {"reference": "owner/nope", "source": "modelscope"}
        pull = wait_for(
            client, client.post("/api/models/pulls", json=body, headers=BOSS).json()["id"]
        )
    assert pull["status"] == "failed" and "no repository owner/nope" in pull["error"]
    bad = client.post("/api/models/pulls", json={"reference": "just-a-name"}, headers=BOSS)
    assert bad.status_code == 400
    assert bad.json()["error"]["message"] == (
        "invalid request: reference: a model reference is OWNER/REPO or OWNER/REPO:FILE.gguf; "
        "got 'just-a-name'"
    )
    gone = client.get("/api/models/pulls/pull-99", headers=BOSS)
    assert gone.status_code == 404 and gone.json()["error"]["message"] == "no model pull 'pull-99'"
