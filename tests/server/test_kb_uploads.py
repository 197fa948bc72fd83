"""Uploads through the REST API that must leave a knowledge base as it was: a replacement
cancelled or failing keeps the previous bytes (on disk and in the catalog), an upload of
nothing but unsupported types is refused up front, and refused files keep their size."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from kbchat.kb.worker import Worker
from kbchat.server import create_app
from kbchat.store.catalog_schema import blobs
from tests.server.support import make_services, make_settings, upload, wait_job

OLD = b'{"note": "descale the kettle every week"}'


def files_on_disk(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("in_database", [False, True])
@pytest.mark.parametrize("ending", ["cancelled", "failed"])
def test_a_replacement_cancelled_or_failing_leaves_the_previous_upload(
    ending: str, in_database: bool
) -> None:
    settings = make_settings(workers=0)  # the test runs the worker by hand
    settings.catalog.uploads_in_database = in_database
    services = make_services(settings)
    with TestClient(create_app(settings, services=services)) as client:
        client.post("/api/kbs", json={"name": "k"})
        jobs = client.app.state.kbchat.jobs  # type: ignore[attr-defined]
        worker = Worker(services, jobs)
        first = client.post("/api/kbs/k/files", files=[("files", ("m.json", OLD, "text/plain"))])
        while worker.run_once():
            pass
        assert wait_job(client, first.json()["job"])["files"][0]["status"] == "indexed"
        [before] = client.get("/api/kbs/k/files").json()
        folder = Path(before["path"]).parent
        new = b'{"note": "the zebra manual"}' if ending == "cancelled" else b'{"note": broken'
        response = client.post(
            "/api/kbs/k/files",
            params={"overwrite": "true"},
            files=[("files", ("m.json", new, "text/plain"))],
        )
        assert response.status_code == 202, response.text
        assert files_on_disk(folder)["m.json"] == OLD  # waiting: the old copy is in place
        job = response.json()["job"]
        if ending == "cancelled":
            assert client.delete(f"/api/jobs/{job['id']}").status_code == 202
        while worker.run_once():
            pass
        finished = wait_job(client, job)
        assert finished["files"][0]["status"] == ending
        assert files_on_disk(folder) == {"m.json": OLD}  # nothing staged is left either
        [after] = client.get("/api/kbs/k/files").json()
        assert (after["sha256"], after["chunks"], after["status"]) == (
            before["sha256"],
            before["chunks"],
            "indexed",
        )
        hits = client.post("/api/search", json={"kbs": ["k"], "query": "descale"}).json()
        assert "descale the kettle" in hits["hits"][0]["text"]
        with services.library.catalog.engine.connect() as conn:
            kept = conn.execute(select(blobs.c.sha256)).scalars().all()
        assert kept == ([before["sha256"]] if in_database else [])
    services.close()


def test_an_upload_of_only_unsupported_types_is_refused_naming_them() -> None:
    settings = make_settings()
    services = make_services(settings)
    with TestClient(create_app(settings, services=services)) as client:
        client.post("/api/kbs", json={"name": "k"})
        refused = client.post(
            "/api/kbs/k/files",
            files=[
                ("files", ("drawing.xyz", b"lines", "application/octet-stream")),
                ("files", ("setup.exe", b"MZ", "application/octet-stream")),
            ],
        )
        assert refused.status_code == 422, refused.text
        message = refused.json()["error"]["message"]
        assert "'drawing.xyz'" in message and "'setup.exe'" in message
        assert ".pdf" in message and ".txt" in message  # the supported types
        assert client.get("/api/kbs/k/files").json() == []
        assert client.get("/api/jobs").json() == []  # no job
        assert not [p for p in (settings.home / "uploads").rglob("*") if p.is_file()]
        mixed = upload(client, "k", {"notes.txt": b"kettle notes", "drawing.xyz": b"twelve bytes"})
        assert sorted((f["name"], f["status"]) for f in mixed["files"]) == [
            ("drawing.xyz", "skipped"),
            ("notes.txt", "indexed"),
        ]
        listed = {f["name"]: f for f in client.get("/api/kbs/k/files").json()}
        assert listed["drawing.xyz"]["size"] == len(b"twelve bytes")  # not a false 0
        assert "unsupported file type .xyz" in listed["drawing.xyz"]["error"]
    services.close()
