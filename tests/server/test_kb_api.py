"""Knowledge-base REST endpoints: KBs, uploads, jobs, sync, rebuild, search; error shapes."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from kbchat.app import Services
from kbchat.config import Settings
from kbchat.kb.jobs import Task
from kbchat.kb.worker import OPS, Work
from kbchat.server import create_app
from tests.server.support import (
    DOCS,
    make_services,
    make_settings,
    sse_events,
    upload,
    wait_job,
)

EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + b"\x00" * 200


def error_of(response: object) -> dict[str, str]:
    body = response.json()  # type: ignore[attr-defined]
    assert set(body) == {"error"}, body
    assert {"type", "message"} <= set(body["error"])
    return body["error"]  # type: ignore[no-any-return]


def test_create_list_get_delete(client: TestClient) -> None:
    created = client.post(
        "/api/kbs",
        json={"name": "manuals", "description": "how-tos", "chunk_size": 300, "chunk_overlap": 30},
    )
    assert created.status_code == 201
    assert created.json()["chunk_size"] == 300 and created.json()["files"] == 0
    listed = client.get("/api/kbs").json()
    assert [kb["name"] for kb in listed] == ["manuals"]
    assert {"name", "embedder", "files", "chunks", "status", "description"} <= set(listed[0])
    assert client.get("/api/kbs/manuals").json()["description"] == "how-tos"
    assert client.delete("/api/kbs/manuals").status_code == 204
    missing = client.get("/api/kbs/manuals")
    assert missing.status_code == 404 and error_of(missing)["type"] == "NotFound"


def test_create_errors_have_real_statuses(client: TestClient) -> None:
    assert client.post("/api/kbs", json={"name": "a"}).status_code == 201
    duplicate = client.post("/api/kbs", json={"name": "a"})
    assert duplicate.status_code == 409 and error_of(duplicate)["type"] == "Conflict"
    bad_name = client.post("/api/kbs", json={"name": "../etc"})
    assert (
        bad_name.status_code == 422
        and "invalid knowledge base name" in error_of(bad_name)["message"]
    )
    bad_embedder = client.post("/api/kbs", json={"name": "b", "embedder": "no-such"})
    assert bad_embedder.status_code == 400 and "no-such" in error_of(bad_embedder)["message"]
    wrong_type = client.post("/api/kbs", json={"name": "c", "chunk_size": "big"})
    assert wrong_type.status_code == 422 and "chunk_size" in error_of(wrong_type)["message"]
    overlap = client.post("/api/kbs", json={"name": "d", "chunk_size": 100, "chunk_overlap": 100})
    assert overlap.status_code == 422


def test_malformed_json_and_unknown_routes(client: TestClient) -> None:
    broken = client.post(
        "/api/kbs", content=b'{"name": ', headers={"content-type": "application/json"}
    )
    assert broken.status_code == 422 and "not valid JSON" in error_of(broken)["message"]
    not_object = client.post("/api/search", json=["docs"])
    assert not_object.status_code == 422
    nowhere = client.get("/api/nowhere")
    assert nowhere.status_code == 404 and "/api/nowhere" in error_of(nowhere)["message"]
    wrong_method = client.put("/api/kbs")
    assert wrong_method.status_code == 405 and error_of(wrong_method)["type"] == "MethodNotAllowed"


def test_upload_ingests_in_a_job_and_lists_files(client: TestClient, docs_kb: str) -> None:
    files = client.get(f"/api/kbs/{docs_kb}/files").json()
    assert {f["name"]: f["status"] for f in files} == {"kettle.txt": "indexed", "tea.md": "indexed"}
    info = client.get(f"/api/kbs/{docs_kb}").json()
    assert info["files"] == 2 and info["chunks"] >= 2 and info["jobs"] == []


def test_upload_names_are_sanitised_and_kept_per_kb(client: TestClient, settings: Settings) -> None:
    for name in ("one", "two"):
        assert client.post("/api/kbs", json={"name": name}).status_code == 201
    job = upload(
        client,
        "one",
        {"/tmp/escape.txt": b"first knowledge base text", "../../x/evil.txt": b"climbing"},
    )
    upload(client, "two", {"C:\\Users\\me\\escape.txt": b"second knowledge base text"})
    saved = [f for f in job["files"] if f["status"] == "indexed"]
    assert [f["name"] for f in saved] == ["escape.txt"]
    refused = {f["name"]: f["error"] for f in job["files"] if f["status"] == "failed"}
    assert "'..'" in refused["../../x/evil.txt"]
    uploads = settings.home / "uploads"
    assert not (settings.home.parent / "escape.txt").exists()
    assert not list(settings.home.parent.rglob("evil.txt"))
    texts = sorted(p.read_text() for p in uploads.rglob("escape.txt"))
    assert texts == ["first knowledge base text", "second knowledge base text"]
    assert all(
        Path(p).resolve().is_relative_to(uploads.resolve()) for p in (f["path"] for f in saved)
    )


BEIJING = "北京分公司上班时间为上午九点，午休一小时。".encode()
SHANGHAI = "上海分公司上班时间为上午八点半，午休一个半小时。".encode()


def test_a_folder_upload_keeps_same_named_files_apart(
    client: TestClient, settings: Settings
) -> None:
    client.post("/api/kbs", json={"name": "hr"})
    job = upload(
        client, "hr", {"北京分公司/考勤 制度.txt": BEIJING, "上海分公司/考勤 制度.txt": SHANGHAI}
    )
    assert sorted((f["name"], f["status"]) for f in job["files"]) == [
        ("上海分公司/考勤 制度.txt", "indexed"),
        ("北京分公司/考勤 制度.txt", "indexed"),
    ]
    files = {f["name"]: Path(f["path"]) for f in client.get("/api/kbs/hr/files").json()}
    assert files["北京分公司/考勤 制度.txt"].read_bytes() == BEIJING
    assert files["上海分公司/考勤 制度.txt"].read_bytes() == SHANGHAI
    search = {"kbs": ["hr"], "query": "上班时间", "top_k": 5, "threshold": 0}
    hits = client.post("/api/search", json=search).json()["hits"]
    assert {h["file"] for h in hits} == set(files)
    # the same file name at the top level is a third, different file
    later = upload(client, "hr", {"考勤 制度.txt": b"Head office: nine to five."})
    assert [(f["name"], f["status"]) for f in later["files"]] == [("考勤 制度.txt", "indexed")]
    # a sync of the uploads folder sees the same names, so nothing changes
    synced = wait_job(client, client.post("/api/kbs/hr/sync").json()["job"])
    assert {f["status"] for f in synced["files"]} == {"unchanged"}
    removed = wait_job(
        client, client.delete("/api/kbs/hr/files/北京分公司/考勤 制度.txt").json()["job"]
    )
    assert [f["status"] for f in removed["files"]] == ["removed"]
    assert not files["北京分公司/考勤 制度.txt"].parent.exists()  # its emptied folder goes too
    assert files["上海分公司/考勤 制度.txt"].is_file()


def test_a_folder_upload_skips_what_adding_a_folder_skips(client: TestClient) -> None:
    client.post("/api/kbs", json={"name": "repo"})
    job = upload(
        client,
        "repo",
        {
            "project/README.md": b"# Project\n\nHow to build the project.",
            "project/.git/notes.md": b"internal git notes",
            "project/~$draft.txt": b"an Office lock file",
            ".profile.txt": b"a single file keeps its name without the dot",
        },
    )
    outcomes = {f["name"]: f for f in job["files"]}
    assert outcomes["project/README.md"]["status"] == "indexed"
    assert outcomes["profile.txt"]["status"] == "indexed"
    for skipped, pattern in (("project/.git/notes.md", ".*"), ("project/~$draft.txt", "~$*")):
        assert outcomes[skipped]["status"] == "skipped"
        assert (
            repr(pattern) in outcomes[skipped]["error"]
            and "ingest.exclude" in outcomes[skipped]["error"]
        )
    names = {f["name"] for f in client.get("/api/kbs/repo/files").json()}
    assert names == {"project/README.md", "profile.txt"}


def test_an_upload_never_replaces_a_different_file_unless_asked(
    client: TestClient, docs_kb: str
) -> None:
    stored = {f["name"]: Path(f["path"]) for f in client.get(f"/api/kbs/{docs_kb}/files").json()}
    before = stored["kettle.txt"].read_bytes()
    changed = b"The K3 kettle now has a five year warranty."
    refused = client.post(
        f"/api/kbs/{docs_kb}/files",
        files=[
            ("files", ("new.txt", b"a file that is new", "text/plain")),
            ("files", ("kettle.txt", changed, "text/plain")),
        ],
    )
    assert refused.status_code == 409, refused.text
    error = refused.json()["error"]
    assert error["type"] == "Conflict" and "'kettle.txt'" in error["message"]
    assert "overwrite=true" in error["message"]
    assert stored["kettle.txt"].read_bytes() == before  # nothing was saved, not even new.txt
    assert not (stored["kettle.txt"].parent / "new.txt").exists()
    names = {f["name"] for f in client.get(f"/api/kbs/{docs_kb}/files").json()}
    assert names == {"kettle.txt", "tea.md"}
    same = upload(client, docs_kb, {"kettle.txt": before})  # the same bytes again: no conflict
    assert [f["status"] for f in same["files"]] == ["unchanged"]
    response = client.post(
        f"/api/kbs/{docs_kb}/files",
        params={"overwrite": "true"},
        files=[("files", ("kettle.txt", changed, "text/plain"))],
    )
    assert response.status_code == 202
    job = wait_job(client, response.json()["job"])
    assert [f["status"] for f in job["files"]] == ["indexed"]
    assert stored["kettle.txt"].read_bytes() == changed
    hits = client.post("/api/search", json={"kbs": [docs_kb], "query": "five year warranty"})
    assert "five year" in hits.json()["hits"][0]["text"]


def test_an_upload_blocked_halfway_leaves_nothing_behind(
    client: TestClient, settings: Settings
) -> None:
    client.post("/api/kbs", json={"name": "k"})
    upload(client, "k", {"notes.txt": b"notes about kettles"})
    response = client.post(
        "/api/kbs/k/files",
        files=[
            ("files", ("fresh.txt", b"a new file", "text/plain")),
            ("files", ("notes.txt/inner.txt", b"needs notes.txt to be a folder", "text/plain")),
        ],
    )
    assert response.status_code == 409, response.text
    assert "notes.txt/inner.txt" in response.json()["error"]["message"]
    folder = next((settings.home / "uploads").iterdir())
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]


def test_an_upload_does_not_replace_a_file_added_from_a_folder(
    client: TestClient, services: Services, tmp_path: Path
) -> None:
    folder = tmp_path / "manuals"
    (folder / "kettles").mkdir(parents=True)
    (folder / "kettles" / "k3.txt").write_text("The K3 kettle boils in two minutes.")
    client.post("/api/kbs", json={"name": "m"})
    services.library.get("m").add([folder])
    refused = client.post(
        "/api/kbs/m/files", files=[("files", ("kettles/k3.txt", b"another text", "text/plain"))]
    )
    assert refused.status_code == 409 and "kettles/k3.txt" in refused.json()["error"]["message"]
    [record] = client.get("/api/kbs/m/files").json()
    assert record["path"] == str(folder / "kettles" / "k3.txt")


def test_content_that_contradicts_the_extension_fails_with_a_reason(client: TestClient) -> None:
    client.post("/api/kbs", json={"name": "k"})
    job = upload(
        client,
        "k",
        {
            "report.pdf": EXE,
            "tool.exe": EXE,
            "notes.txt": b"plain notes",
            "blob.txt": b"\x00\x01\x02binary",
            "empty.md": b"",
        },
    )
    outcomes = {f["name"]: f for f in job["files"]}
    assert outcomes["report.pdf"]["status"] == "failed"
    assert "Windows executable" in outcomes["report.pdf"]["error"]
    assert outcomes["tool.exe"]["status"] == "skipped"
    assert outcomes["blob.txt"]["status"] == "failed" and "binary" in outcomes["blob.txt"]["error"]
    assert outcomes["empty.md"]["status"] == "failed"
    assert outcomes["notes.txt"]["status"] == "indexed"
    assert job["status"] == "done" and job["total"] == job["done"] == 5
    listed = {f["name"]: f for f in client.get("/api/kbs/k/files").json()}  # as `kb add` lists
    assert {name: f["status"] for name, f in listed.items()} == {
        "blob.txt": "failed",
        "empty.md": "failed",
        "notes.txt": "indexed",
        "report.pdf": "failed",
        "tool.exe": "skipped",
    }
    assert "Windows executable" in listed["report.pdf"]["error"]
    assert listed["report.pdf"]["path"] == ""  # refused: no copy kept


def test_upload_limits_answer_413(tmp_path: Path) -> None:
    settings = make_settings(max_upload_mb=0.001, max_request_mb=0.01, max_upload_files=2)
    services = make_services(settings)
    with TestClient(create_app(settings, services=services)) as client:
        client.post("/api/kbs", json={"name": "k"})
        big_file = client.post(
            "/api/kbs/k/files", files=[("files", ("big.txt", b"x" * 2000, "text/plain"))]
        )
        assert big_file.status_code == 413 and "big.txt" in error_of(big_file)["message"]
        big_request = client.post(
            "/api/kbs/k/files", files=[("files", ("huge.txt", b"x" * 20_000, "text/plain"))]
        )
        assert big_request.status_code == 413
        assert error_of(big_request)["type"] == "PayloadTooLarge"
        many = client.post(
            "/api/kbs/k/files",
            files=[("files", (f"{i}.txt", b"x", "text/plain")) for i in range(3)],
        )
        assert many.status_code == 413 and "max_upload_files" in error_of(many)["message"]
        assert client.get("/api/kbs/k/files").json() == []
    services.close()


def test_json_body_limit_counts_streamed_bytes_too(tmp_path: Path) -> None:
    settings = make_settings(max_body_kb=1)
    services = make_services(settings)
    with TestClient(create_app(settings, services=services)) as client:
        declared = client.post("/api/search", json={"kbs": ["x"], "query": "q" * 5000})
        assert declared.status_code == 413

        def chunks() -> Iterator[bytes]:
            yield b'{"kbs": ["x"], "query": "'
            yield b"q" * 4000
            yield b'"}'

        streamed = client.post(
            "/api/search", content=chunks(), headers={"content-type": "application/json"}
        )
        assert streamed.status_code == 413 and error_of(streamed)["type"] == "PayloadTooLarge"
    services.close()


def test_job_events_stream_progress_then_done(client: TestClient) -> None:
    client.post("/api/kbs", json={"name": "k"})
    response = client.post(
        "/api/kbs/k/files",
        files=[("files", (name, data, "text/plain")) for name, data in DOCS.items()],
    )
    job = response.json()["job"]
    assert job["status"] == "queued" and job["kb"] == "k" and job["kind"] == "add"
    with client.stream("GET", f"/api/jobs/{job['id']}/events") as events:
        assert events.headers["content-type"].startswith("text/event-stream")
        body = events.read().decode()
    parsed = sse_events(body)
    assert parsed[-1][0] == "done" and parsed[-1][1]["status"] == "done"
    assert all(name == "progress" for name, _ in parsed[:-1])
    assert parsed[-1][1]["done"] == parsed[-1][1]["total"] == 2
    assert client.get("/api/jobs/nope").status_code == 404
    assert client.get("/api/jobs/nope/events").status_code == 404
    assert [j["id"] for j in client.get("/api/jobs", params={"kb": "k"}).json()] == [job["id"]]


def test_delete_file_removes_chunks_and_the_uploaded_copy(client: TestClient, docs_kb: str) -> None:
    path = Path(
        next(
            f["path"]
            for f in client.get(f"/api/kbs/{docs_kb}/files").json()
            if f["name"] == "tea.md"
        )
    )
    assert path.is_file()
    response = client.delete(f"/api/kbs/{docs_kb}/files/tea.md")
    assert response.status_code == 202
    job = wait_job(client, response.json()["job"])
    assert [(f["name"], f["status"]) for f in job["files"]] == [("tea.md", "removed")]
    assert not path.exists()
    assert [f["name"] for f in client.get(f"/api/kbs/{docs_kb}/files").json()] == ["kettle.txt"]
    assert client.delete(f"/api/kbs/{docs_kb}/files/tea.md").status_code == 404


def test_sync_rescans_the_uploads_folder(client: TestClient, docs_kb: str) -> None:
    files = {f["name"]: Path(f["path"]) for f in client.get(f"/api/kbs/{docs_kb}/files").json()}
    files["tea.md"].unlink()
    (files["kettle.txt"].parent / "new.txt").write_text("A new manual about the toaster.")
    response = client.post(f"/api/kbs/{docs_kb}/sync")
    assert response.status_code == 202
    job = wait_job(client, response.json()["job"])
    statuses = {f["name"]: f["status"] for f in job["files"]}
    assert statuses == {"kettle.txt": "unchanged", "new.txt": "indexed", "tea.md": "removed"}


def test_sync_of_a_server_folder_needs_it_allowed(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "a.txt").write_text("Allowed folder content about printers.")
    settings = make_settings(sync_folders=[str(shared)])
    services = make_services(settings)
    with TestClient(create_app(settings, services=services)) as client:
        client.post("/api/kbs", json={"name": "k"})
        refused = client.post("/api/kbs/k/sync", json={"folder": str(tmp_path)})
        assert refused.status_code == 403 and error_of(refused)["type"] == "Forbidden"
        sneaky = client.post("/api/kbs/k/sync", json={"folder": f"{shared}/../"})
        assert sneaky.status_code == 403
        allowed = client.post("/api/kbs/k/sync", json={"folder": str(shared)})
        assert allowed.status_code == 202
        job = wait_job(client, allowed.json()["job"])
        assert [(f["name"], f["status"]) for f in job["files"]] == [("a.txt", "indexed")]
    services.close()


def test_server_sync_never_follows_links_out_of_the_folder(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "a.txt").write_text("Allowed folder content about printers.")
    (tmp_path / "kbchat.toml").write_text('api_key = "zebra-passphrase-7741"')
    (shared / "config.txt").symlink_to(tmp_path / "kbchat.toml")
    settings = make_settings(sync_folders=[str(shared)])
    services = make_services(settings)
    with TestClient(create_app(settings, services=services)) as client:
        client.post("/api/kbs", json={"name": "k"})
        job = wait_job(
            client, client.post("/api/kbs/k/sync", json={"folder": str(shared)}).json()["job"]
        )
        statuses = {f["name"]: f["status"] for f in job["files"]}
        assert statuses == {"a.txt": "indexed", "config.txt": "skipped"}
        payload = {"kbs": ["k"], "query": "zebra passphrase", "threshold": 0}
        hits = client.post("/api/search", json=payload)
        assert hits.status_code == 200 and "7741" not in hits.text
    services.close()


def test_rebuild_reindexes_every_file(client: TestClient, docs_kb: str) -> None:
    response = client.post(f"/api/kbs/{docs_kb}/rebuild")
    assert response.status_code == 202 and response.json()["job"]["kind"] == "rebuild"
    job = wait_job(client, response.json()["job"])
    assert sorted((f["name"], f["status"]) for f in job["files"]) == [
        ("kettle.txt", "indexed"),
        ("tea.md", "indexed"),
    ]


def test_writes_to_one_kb_queue_and_block_its_deletion(
    client: TestClient, docs_kb: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = client.app.state.kbchat  # type: ignore[attr-defined]
    gate = threading.Event()

    def hold(work: Work) -> None:
        assert gate.wait(10)

    monkeypatch.setitem(OPS, "hold", hold)
    blocker = state.jobs.submit(docs_kb, "test", [Task("hold")])
    queued = client.post(f"/api/kbs/{docs_kb}/rebuild").json()["job"]
    assert client.get(f"/api/jobs/{queued['id']}").json()["status"] == "queued"
    busy = client.delete(f"/api/kbs/{docs_kb}")
    assert busy.status_code == 409 and blocker.id in error_of(busy)["message"]
    gate.set()
    assert wait_job(client, queued)["status"] == "done"
    assert client.delete(f"/api/kbs/{docs_kb}").status_code == 204


def test_a_queued_upload_lists_its_files_with_their_size(
    client: TestClient, docs_kb: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = client.app.state.kbchat  # type: ignore[attr-defined]
    gate = threading.Event()
    monkeypatch.setitem(OPS, "hold", lambda work: gate.wait(10))
    state.jobs.submit(docs_kb, "test", [Task("hold")])
    body = b"Descaling: run vinegar through the kettle once a month.\n" * 40
    response = client.post(
        f"/api/kbs/{docs_kb}/files",
        files=[("files", ("descale.txt", body, "text/plain"))],
    )
    assert response.status_code == 202, response.text
    files = {f["name"]: f for f in client.get(f"/api/kbs/{docs_kb}/files").json()}
    assert files["descale.txt"]["status"] == "pending"
    assert files["descale.txt"]["size"] == len(body)
    gate.set()
    assert wait_job(client, response.json()["job"])["status"] == "done"
    files = {f["name"]: f for f in client.get(f"/api/kbs/{docs_kb}/files").json()}
    assert files["descale.txt"]["size"] == len(body)


def test_deleting_a_kb_removes_its_uploads(
    client: TestClient, docs_kb: str, settings: Settings
) -> None:
    folder = Path(client.get(f"/api/kbs/{docs_kb}/files").json()[0]["path"]).parent
    assert folder.is_dir()
    assert client.delete(f"/api/kbs/{docs_kb}").status_code == 204
    assert not folder.exists()


def test_search_returns_hits_notices_and_timings(client: TestClient, docs_kb: str) -> None:
    response = client.post(
        "/api/search",
        json={
            "kbs": [docs_kb],
            "query": "kettle warranty",
            "top_k": 1,
            "mode": "hybrid",
            "threshold": 0,
        },
    )
    assert response.status_code == 200
    body = response.json()
    assert [h["file"] for h in body["hits"]] == ["kettle.txt"]
    assert 0 <= body["hits"][0]["score"] <= 1 and body["hits"][0]["kb"] == docs_kb
    assert body["notices"] == [] and "total" in body["timings_ms"]
    filtered = client.post(
        "/api/search",
        json={"kbs": [docs_kb], "query": "tea warranty", "file_types": ["md"], "threshold": 0},
    )
    assert {h["file"] for h in filtered.json()["hits"]} == {"tea.md"}


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        ({"kbs": ["nope"], "query": "x"}, 404),
        ({"kbs": [], "query": "x"}, 422),
        ({"kbs": ["docs"], "query": "   "}, 422),
        ({"kbs": ["docs"], "query": "x", "top_k": 0}, 422),
        ({"kbs": ["docs"], "query": "x", "mode": "magic"}, 422),
        ({"kbs": ["docs"], "query": "x", "pages": [5, 2]}, 422),
        ({"kbs": "docs", "query": "x"}, 422),
    ],
)
def test_search_errors(
    client: TestClient, docs_kb: str, payload: dict[str, object], status: int
) -> None:
    response = client.post("/api/search", json=payload)
    assert response.status_code == status, response.text
    assert error_of(response)["message"]


def test_system_endpoints(client: TestClient, services: Services) -> None:
    health = client.get("/api/health").json()
    assert health["status"] == "ok"
    configured = services.settings.models[services.settings.default_model]
    assert health["generations"]["slots"] == configured.parallel == 4
    models = client.get("/api/models").json()
    assert [(m["name"], m["backend"], m["default"]) for m in models] == [
        ("qwen2.5-0.5b", "llamacpp", True)
    ]
    assert models[0]["source"] == "embedded qwen2.5-coder-0.5b-instruct-q4_k_m"
    assert models[0]["status"] in ("ready", "not assembled", "not installed")
    assert models[0]["n_ctx"] == 4096 and models[0]["file_bytes"] > 400e6
    embedded = {m["key"]: m for m in client.get("/api/models/embedded").json()}
    assert "kbchat[llm-large]" in embedded["qwen2.5-coder-1.5b-instruct"]["install"]
    settings = client.get("/api/settings").json()
    assert settings["server"]["auth_required"] is False and "pdf" in settings["file_types"]
    text = client.get("/api/settings").text
    assert "api_key" not in text and "sha256" not in text and "keys_file" not in text
    doctor = client.get("/api/doctor").json()
    assert any(check["name"] == "catalog" and check["ok"] for check in doctor)
    assert client.get("/openapi.json").json()["info"]["title"] == "kbchat"
    assert client.get("/docs").status_code == 200


def test_a_queued_job_is_cancelled_and_its_uploads_are_forgotten() -> None:
    settings = make_settings(workers=0)  # no worker here: the job stays queued
    services = make_services(settings)
    with TestClient(create_app(settings, services=services)) as client:
        client.post("/api/kbs", json={"name": "k"})
        job = client.post(
            "/api/kbs/k/files",
            files=[("files", (name, data, "text/plain")) for name, data in DOCS.items()],
        ).json()["job"]
        assert [f["status"] for f in client.get("/api/kbs/k/files").json()] == ["pending"] * 2
        response = client.delete(f"/api/jobs/{job['id']}")
        assert response.status_code == 202, response.text
        cancelled = response.json()
        assert cancelled["id"] == job["id"] and cancelled["status"] == "cancelled"
        assert cancelled["error"] == "cancelled"  # auth is off: nobody to name
        assert sorted((f["name"], f["status"]) for f in cancelled["files"]) == [
            ("kettle.txt", "cancelled"),
            ("tea.md", "cancelled"),
        ]
        assert client.get(f"/api/jobs/{job['id']}").json()["status"] == "cancelled"
        assert client.get("/api/kbs/k/files").json() == []  # nothing left pending
        uploads = settings.home / "uploads"
        assert not [p for p in uploads.rglob("*") if p.is_file()]
        again = client.delete(f"/api/jobs/{job['id']}")
        assert again.status_code == 409 and error_of(again)["type"] == "Conflict"
        assert "already finished" in error_of(again)["message"]
        assert client.delete("/api/jobs/nope").status_code == 404
    services.close()
