"""A server started over a catalog that a stopped run left mid-ingest queues the files again."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from filelock import FileLock

from kbchat.app import Services
from kbchat.config import Settings
from kbchat.server import create_app
from kbchat.server.app import INTERRUPTED
from tests.server.support import wait_job


def test_files_left_pending_are_queued_again_at_start(
    settings: Settings, services: Services, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    kb = services.library.create("docs")
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "kettle.txt").write_text("The K3 kettle has a two year warranty.")
    services.library.get("docs").add([folder / "kettle.txt"])
    (folder / "tea.md").write_text("Brew green tea at 80 degrees.")
    # a run killed mid-ingest: rows marked pending, and no job left to finish them
    services.library.catalog.mark_pending(
        kb.id, [("tea.md", str(folder / "tea.md"), 29), ("gone.txt", str(folder / "gone.txt"), 7)]
    )
    write_lock = FileLock(str(services.library.get("docs").directory / "write.lock"))
    write_lock.acquire()  # keeps the resumed job waiting so its queued state can be seen
    try:
        with (
            caplog.at_level(logging.WARNING, logger="kbchat.server.app"),
            TestClient(create_app(settings, services=services)) as client,
        ):
            assert "2 file(s) of knowledge base 'docs' were left pending" in caplog.text
            files = {f["name"]: f for f in client.get("/api/kbs/docs/files").json()}
            assert {n: f["status"] for n, f in files.items()} == {
                "gone.txt": "pending",
                "kettle.txt": "indexed",
                "tea.md": "pending",
            }
            assert files["tea.md"]["error"] == INTERRUPTED
            assert files["tea.md"]["size"] == 29  # what was known is kept while it waits
            [job] = client.get("/api/jobs", params={"kb": "docs"}).json()
            assert job["kind"] == "resume" and job["status"] in ("queued", "running")
            assert client.get("/api/kbs/docs").json()["jobs"] == [job["id"]]
            write_lock.release()
            done = wait_job(client, job)
            outcomes = {f["name"]: f for f in done["files"]}
            assert outcomes["tea.md"]["status"] == "indexed"
            assert outcomes["gone.txt"]["status"] == "failed"
            assert "gone.txt" in outcomes["gone.txt"]["error"]
            files = {f["name"]: f for f in client.get("/api/kbs/docs/files").json()}
            assert files["tea.md"]["status"] == "indexed" and files["tea.md"]["error"] is None
            assert files["gone.txt"]["status"] == "failed"
            hits = client.post("/api/search", json={"kbs": ["docs"], "query": "green tea"}).json()
            assert hits["hits"][0]["file"] == "tea.md"
    finally:
        if write_lock.is_locked:
            write_lock.release()


def test_a_clean_catalog_starts_no_job(settings: Settings, services: Services) -> None:
    services.library.create("docs")
    with TestClient(create_app(settings, services=services)) as client:
        assert client.get("/api/jobs").json() == []
