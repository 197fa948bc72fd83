"""API keys: when they are required, how they are stored, and what each role may do."""

from __future__ import annotations

import json
import logging
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from kbchat.cli.main import main
from kbchat.config import Settings
from kbchat.errors import BadInput, ConfigError, NotFound
from kbchat.server import create_app
from kbchat.server.auth import (
    Authenticator,
    FileKeys,
    Principal,
    add_key,
    hash_key,
    is_loopback,
    keys_path,
    keys_required,
    remove_key,
)
from kbchat.server.errors import Forbidden, Unauthorized
from tests.server.support import DOCS, make_services, make_settings, upload


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("192.168.1.5", False),
        ("example.org", False),
    ],
)
def test_loopback_detection(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(
    ("host", "auth", "required"),
    [
        ("127.0.0.1", "auto", False),
        ("0.0.0.0", "auto", True),
        ("0.0.0.0", "off", False),
        ("127.0.0.1", "on", True),
    ],
)
def test_when_keys_are_required(host: str, auth: str, required: bool) -> None:
    assert keys_required(make_settings(host=host, auth=auth)) is required


def test_public_bind_without_keys_refuses_to_start() -> None:
    with pytest.raises(ConfigError, match="kbchat keys add"):
        create_app(make_settings(host="0.0.0.0"))


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.5", "::", "example.org"])
def test_auth_off_beyond_loopback_needs_an_explicit_override(
    host: str, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(ConfigError, match=r'server\.auth = "off".*server\.insecure_no_auth'):
        create_app(make_settings(host=host, auth="off"))
    with caplog.at_level(logging.WARNING, logger="kbchat.server.auth"):
        create_app(make_settings(host=host, auth="off", insecure_no_auth=True))
    assert "no API keys are checked" in caplog.text


def test_auth_off_on_loopback_starts_quietly(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="kbchat.server.auth"):
        create_app(make_settings(host="127.0.0.1", auth="off"))
    assert caplog.text == ""


def test_serve_refuses_auth_off_beyond_loopback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from kbchat.server.shutdown import GracefulServer

    served: list[str] = []

    def run(server: GracefulServer, sockets: object = None) -> None:
        served.append(server.config.host)
        server.started = True

    monkeypatch.setattr(GracefulServer, "run", run)
    monkeypatch.setenv("KBCHAT_EMBEDDER__BACKEND", "hash")
    monkeypatch.setenv("KBCHAT_SERVER__AUTH", "off")
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "--host", "0.0.0.0", "--no-sample"])
    assert exit_info.value.code == 1
    message = " ".join(capsys.readouterr().err.split())
    assert 'server.auth = "off"' in message and "--insecure-no-auth" in message
    assert served == []
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "--host", "0.0.0.0", "--no-sample", "--insecure-no-auth"])
    assert exit_info.value.code == 0 and served == ["0.0.0.0"]


def test_keys_file_stores_only_hashes(settings: Settings) -> None:
    path = keys_path(settings)
    key = add_key(FileKeys(path), "alice", {"docs": "write"})
    text = path.read_text()
    assert key not in text and hash_key(key) in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(BadInput, match="already exists"):
        add_key(FileKeys(path), "alice", {"*": "read"})
    with pytest.raises(BadInput, match="role"):
        add_key(FileKeys(path), "bob", {"*": "owner"})
    remove_key(FileKeys(path), "alice")
    assert json.loads(path.read_text()) == []
    with pytest.raises(NotFound):
        remove_key(FileKeys(path), "alice")


def test_principal_roles() -> None:
    reader = Principal("r", {"*": "read", "docs": "write"})
    assert reader.can("other", "read") and not reader.can("other", "write")
    assert reader.can("docs", "write") and not reader.can("docs", "admin")
    with pytest.raises(Forbidden, match="may not write to knowledge base 'other'"):
        reader.require("other", "write")
    assert Principal(None).can("anything", "admin")


def test_authenticator_rereads_the_keys_file(settings: Settings) -> None:
    path = keys_path(settings)
    first = add_key(FileKeys(path), "first", {"*": "read"})
    auth = Authenticator(make_settings(auth="on"))
    assert auth.authenticate(f"Bearer {first}").name == "first"
    second = add_key(FileKeys(path), "second", {"*": "admin"})
    assert auth.authenticate(f"Bearer {second}").permissions == {"*": "admin"}
    remove_key(FileKeys(path), "first")
    with pytest.raises(Unauthorized):
        auth.authenticate(f"Bearer {first}")
    for header in (None, "", "Basic abc", "Bearer ", f"bearer {second}x"):
        with pytest.raises(Unauthorized):
            auth.authenticate(header)


@pytest.fixture
def keys(settings: Settings) -> dict[str, str]:
    path = keys_path(settings)
    return {
        "admin": add_key(FileKeys(path), "admin", {"*": "admin"}),
        "writer": add_key(FileKeys(path), "writer", {"docs": "write"}),
        "reader": add_key(FileKeys(path), "reader", {"docs": "read"}),
    }


@pytest.fixture
def secured(keys: dict[str, str]) -> Iterator[TestClient]:
    settings = make_settings(host="0.0.0.0")
    services = make_services(settings)
    with TestClient(create_app(settings, services=services)) as client:
        yield client
    services.close()


def as_(keys: dict[str, str], who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {keys[who]}"}


def test_requests_need_a_known_key(secured: TestClient, keys: dict[str, str]) -> None:
    assert secured.get("/api/health").status_code == 200  # probes need no key
    missing = secured.get("/api/kbs")
    assert missing.status_code == 401 and missing.headers["WWW-Authenticate"] == "Bearer"
    assert missing.json()["error"]["type"] == "Unauthorized"
    assert secured.get("/api/kbs", headers={"Authorization": "Bearer nope"}).status_code == 401
    v1 = secured.get("/v1/models")
    assert v1.status_code == 401 and v1.json()["error"]["code"] == "invalid_api_key"
    assert secured.get("/api/kbs", headers=as_(keys, "reader")).status_code == 200


def test_roles_per_knowledge_base(secured: TestClient, keys: dict[str, str]) -> None:
    refused = secured.post("/api/kbs", json={"name": "docs"}, headers=as_(keys, "writer"))
    assert refused.status_code == 403 and refused.json()["error"]["type"] == "Forbidden"
    for name in ("docs", "private"):
        assert (
            secured.post("/api/kbs", json={"name": name}, headers=as_(keys, "admin")).status_code
            == 201
        )
    job = upload(secured, "docs", DOCS, headers=as_(keys, "writer"))
    assert job["status"] == "done"
    assert (
        secured.post(
            "/api/kbs/private/files",
            headers=as_(keys, "writer"),
            files=[("files", ("a.txt", b"x", "text/plain"))],
        ).status_code
        == 404
    )
    assert (
        secured.post(
            "/api/kbs/docs/files",
            headers=as_(keys, "reader"),
            files=[("files", ("a.txt", b"x", "text/plain"))],
        ).status_code
        == 403
    )
    listed = secured.get("/api/kbs", headers=as_(keys, "reader")).json()
    assert [kb["name"] for kb in listed] == ["docs"]
    search = {"kbs": ["docs"], "query": "kettle"}
    assert secured.post("/api/search", json=search, headers=as_(keys, "reader")).status_code == 200
    search["kbs"] = ["private"]
    assert secured.post("/api/search", json=search, headers=as_(keys, "reader")).status_code == 404
    models = secured.get("/v1/models", headers=as_(keys, "reader")).json()["data"]
    assert "kb:private" not in [m["id"] for m in models]
    assert secured.get("/api/doctor", headers=as_(keys, "reader")).status_code == 403
    assert secured.delete("/api/kbs/docs", headers=as_(keys, "writer")).status_code == 403


def _probes(kb: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    """Every request naming knowledge base ``kb``: (method, path, JSON body)."""
    return [
        ("GET", f"/api/kbs/{kb}", None),
        ("GET", f"/api/kbs/{kb}/files", None),
        ("DELETE", f"/api/kbs/{kb}", None),
        ("DELETE", f"/api/kbs/{kb}/files/kettle.txt", None),
        ("POST", f"/api/kbs/{kb}/sync", {}),
        ("POST", f"/api/kbs/{kb}/rebuild", None),
        ("POST", "/api/search", {"kbs": [kb], "query": "kettle"}),
        ("POST", "/api/chat", {"kbs": [kb], "question": "kettle?", "stream": False}),
        (
            "POST",
            "/v1/chat/completions",
            {"model": f"kb:{kb}", "messages": [{"role": "user", "content": "kettle?"}]},
        ),
        ("POST", "/v1/embeddings", {"model": kb, "input": "kettle"}),
        ("POST", "/v1/embeddings", {"model": f"kb:{kb}", "input": "kettle"}),
    ]


def test_a_kb_the_key_cannot_read_looks_exactly_like_a_missing_one(
    secured: TestClient, keys: dict[str, str]
) -> None:
    admin, reader = as_(keys, "admin"), as_(keys, "reader")
    for name in ("private", "docs"):
        assert secured.post("/api/kbs", json={"name": name}, headers=admin).status_code == 201
    job = upload(secured, "private", DOCS, headers=admin)
    for (method, path, body), (_, missing_path, missing_body) in zip(
        _probes("private"), _probes("nowhere"), strict=True
    ):
        hidden = secured.request(method, path, json=body, headers=reader)
        missing = secured.request(method, missing_path, json=missing_body, headers=reader)
        assert hidden.status_code == missing.status_code == 404, (path, hidden.text)
        assert hidden.text == missing.text.replace("nowhere", "private"), path
    upload_to = secured.post(
        "/api/kbs/private/files", headers=reader, files=[("files", ("a.txt", b"x", "text/plain"))]
    )
    assert upload_to.status_code == 404
    assert upload_to.json() == secured.get("/api/kbs/private", headers=reader).json()
    foreign = secured.get(f"/api/jobs/{job['id']}", headers=reader)
    unknown = secured.get("/api/jobs/1-00000000", headers=reader)
    assert foreign.status_code == unknown.status_code == 404
    assert foreign.text == unknown.text.replace("1-00000000", job["id"])
    assert "private" not in foreign.text
    assert secured.get(f"/api/jobs/{job['id']}/events", headers=reader).status_code == 404
    # the key that may read it still gets a real answer, and 403 where its role is short
    assert secured.get("/api/kbs/private", headers=admin).status_code == 200
    refused = secured.post("/api/kbs/docs/rebuild", headers=reader)
    assert refused.status_code == 403 and refused.json()["error"]["type"] == "Forbidden"


def test_conversations_belong_to_their_key(secured: TestClient, keys: dict[str, str]) -> None:
    answer = secured.post(
        "/api/chat", json={"question": "hi", "stream": False}, headers=as_(keys, "reader")
    ).json()
    conversation = answer["conversation_id"]
    mine = secured.get("/api/conversations", headers=as_(keys, "reader")).json()
    assert [c["id"] for c in mine] == [conversation]
    assert secured.get("/api/conversations", headers=as_(keys, "writer")).json() == []
    theirs = secured.get(f"/api/conversations/{conversation}", headers=as_(keys, "writer"))
    assert theirs.status_code == 404
    hijack = secured.post(
        "/api/chat",
        headers=as_(keys, "writer"),
        json={"question": "hi", "stream": False, "conversation_id": conversation},
    )
    assert hijack.status_code == 404


def test_cors_is_off_unless_configured() -> None:
    origin = {"Origin": "https://intranet.example", "Access-Control-Request-Method": "POST"}
    for origins, allowed in (([], False), (["https://intranet.example"], True)):
        settings = make_settings(cors_origins=origins)
        services = make_services(settings)
        with TestClient(create_app(settings, services=services)) as client:
            response = client.options("/api/search", headers=origin)
            header = response.headers.get("access-control-allow-origin")
            assert (header == "https://intranet.example") is allowed
        services.close()


def test_cli_keys_add_prints_the_key_once(
    capsys: pytest.CaptureFixture[str], settings: Settings
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["keys", "add", "ci", "--kb", "docs", "--role", "write"])
    assert exit_info.value.code in (0, None)
    key = capsys.readouterr().out.strip()
    assert key.startswith("kbc-") and len(key) > 40
    auth = Authenticator(make_settings(auth="on"))
    assert auth.authenticate(f"Bearer {key}").permissions == {"docs": "write"}
    with pytest.raises(SystemExit):
        main(["keys", "list", "--json"])
    listed = json.loads(capsys.readouterr().out)
    assert listed == [{"name": "ci", "permissions": {"docs": "write"}}]
    assert key not in Path(keys_path(settings)).read_text()


def test_a_summary_job_is_stopped_by_who_started_it_or_a_writer(
    secured: TestClient, keys: dict[str, str]
) -> None:
    path = keys_path(make_settings())
    other = add_key(FileKeys(path), "other", {"docs": "read"})
    assert secured.post("/api/kbs", json={"name": "docs"}, headers=as_(keys, "admin")).status_code
    upload(secured, "docs", DOCS, headers=as_(keys, "writer"))
    started = secured.post("/api/kbs/docs/summary/jobs", json={}, headers=as_(keys, "reader"))
    assert started.status_code == 202, started.text
    stop = f"/api/kbs/docs/summary/jobs/{started.json()['id']}"
    refused = secured.delete(stop, headers={"Authorization": f"Bearer {other}"})
    assert (
        refused.status_code == 403 and "started by 'reader'" in refused.json()["error"]["message"]
    )
    assert secured.delete(stop, headers=as_(keys, "reader")).status_code == 202
    assert secured.delete(stop, headers=as_(keys, "writer")).status_code == 202
    # files and uploads of the OpenAI Files API are each key's own
    created = secured.post(
        "/v1/files",
        headers=as_(keys, "reader"),
        files={"file": ("a.txt", b"hello", "text/plain")},
        data={"purpose": "user_data"},
    )
    assert created.status_code == 200, created.text
    file_id = created.json()["id"]
    assert secured.get(f"/v1/files/{file_id}", headers=as_(keys, "reader")).status_code == 200
    hidden = secured.get(f"/v1/files/{file_id}", headers=as_(keys, "writer"))
    assert hidden.status_code == 404 and hidden.json()["error"]["code"] == "not_found"


def test_cancelling_a_job_needs_write_access(secured: TestClient, keys: dict[str, str]) -> None:
    for name in ("docs", "private"):
        secured.post("/api/kbs", json={"name": name}, headers=as_(keys, "admin"))
    job = upload(secured, "docs", DOCS, headers=as_(keys, "writer"))
    hidden = upload(secured, "private", DOCS, headers=as_(keys, "admin"))
    url = f"/api/jobs/{job['id']}"
    assert secured.delete(url).status_code == 401
    refused = secured.delete(url, headers=as_(keys, "reader"))
    assert refused.status_code == 403 and refused.json()["error"]["type"] == "Forbidden"
    assert secured.delete(url, headers=as_(keys, "writer")).status_code == 409  # finished
    assert (
        secured.delete(f"/api/jobs/{hidden['id']}", headers=as_(keys, "writer")).status_code == 404
    )
