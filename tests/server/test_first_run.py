"""The first start said as it happens: the sample KB's progress in the log and in its job,
and the default model made ready in the background."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.testclient import TestClient

from kbchat.app import Services
from kbchat.config import Settings
from kbchat.errors import ConfigError
from kbchat.kb.worker import SAMPLE_KB
from kbchat.server import create_app
from kbchat.server.first_run import warm_default_model
from tests.server.support import wait_job


def test_sample_kb_progress_is_logged_and_in_its_job(
    settings: Settings, services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kbchat.kb.worker")
    with TestClient(create_app(settings, services=services, seed_sample=True)) as client:
        jobs = client.get("/api/jobs", params={"kb": SAMPLE_KB}).json()
        job = wait_job(client, jobs[0], timeout=120)
    assert job["status"] == "done" and job["done"] == job["total"] > 1
    lines = [r.getMessage() for r in caplog.records]
    total = job["total"]
    assert f"indexing the sample knowledge base {SAMPLE_KB!r}: {total} files" in lines
    progress = [line for line in lines if line.startswith("indexing the sample knowledge base ")]
    assert any(
        line.startswith(f"indexing the sample knowledge base {total}/{total}: ")
        for line in progress
    )
    assert any(line.startswith("indexing the sample knowledge base 1/") for line in progress)


def test_no_sample_when_the_library_has_a_kb(settings: Settings, services: Services) -> None:
    services.library.ensure("mine")
    with TestClient(create_app(settings, services=services, seed_sample=True)) as client:
        assert client.get("/api/jobs", params={"kb": SAMPLE_KB}).json() == []


class _Models:
    def __init__(self, error: Exception | None) -> None:
        self.error = error
        self.asked: list[str | None] = []

    def get(self, name: str | None = None) -> Any:
        self.asked.append(name)
        if self.error is not None:
            raise self.error
        return object()


def _state(settings: Settings, models: _Models) -> Any:
    return SimpleNamespace(settings=settings, services=SimpleNamespace(models=models))


def test_the_default_model_is_made_ready_in_the_background(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kbchat.server.first_run")
    models = _Models(None)
    warm_default_model(_state(settings, models)).join(30)
    assert models.asked == [settings.default_model]
    assert any("is ready" in r.getMessage() for r in caplog.records)


def test_a_model_that_cannot_load_is_logged_not_raised(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    models = _Models(ConfigError("chat model file /x.gguf does not exist"))
    warm_default_model(_state(settings, models)).join(30)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("is not ready: chat model file /x.gguf does not exist" in w for w in warnings)
