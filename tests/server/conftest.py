"""Server test fixtures: an app over the hash embedder and a scripted chat model."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from kbchat.app import Services
from kbchat.config import Settings
from kbchat.server import create_app
from kbchat.testing.fakes import ScriptedChatModel
from tests.server.support import DOCS, make_services, make_settings, upload


@pytest.fixture
def settings() -> Settings:
    return make_settings()


@pytest.fixture
def model() -> ScriptedChatModel:
    return ScriptedChatModel(["The K3 kettle warranty is two years [1]."], name="scripted")


@pytest.fixture
def services(settings: Settings, model: ScriptedChatModel) -> Iterator[Services]:
    services = make_services(settings, model)
    yield services
    services.close()


@pytest.fixture
def client(settings: Settings, services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(settings, services=services)) as test_client:
        yield test_client


@pytest.fixture
def docs_kb(client: TestClient) -> str:
    assert client.post("/api/kbs", json={"name": "docs"}).status_code == 201
    job = upload(client, "docs", DOCS)
    assert job["status"] == "done" and all(f["status"] == "indexed" for f in job["files"])
    return "docs"
