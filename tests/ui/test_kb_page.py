"""The knowledge-base page in a real browser against the real app (one server for the module,
emptied between tests): create, upload with progress and failure reasons, drag and drop,
delete, sync, rebuild, the retrieval test, and files another job indexes."""

from __future__ import annotations

from collections.abc import Iterator
from hashlib import sha256
from pathlib import Path
from typing import Any

import pytest
from documents import pdf_bytes
from harness import INDEXING, Served, serve
from playwright.sync_api import expect

from kbchat.kb.worker import add_tasks

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WARRANTY = ["Unpacking the kettle.", "Cleaning the kettle.", "The warranty lasts two years."]


@pytest.fixture(scope="module")
def module_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serve(tmp_path_factory.mktemp("kb-page")) as served:
        yield served


@pytest.fixture
def app(module_app: Served) -> Iterator[Served]:
    yield module_app
    INDEXING.set()
    module_app.reset()


def add_files(app: Served, kb: str, files: dict[str, bytes], tmp_path: Path) -> None:
    folder = tmp_path / kb
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    outcomes = app.services.library.ensure(kb).add([folder])
    assert {o.status for o in outcomes} == {"indexed"}


def test_create_a_kb_then_a_duplicate_shows_the_server_error(page: Any, app: Served) -> None:
    page.goto(f"{app.url}/#/kbs")
    expect(page.locator("#kb-list")).to_contain_text("No knowledge bases yet.")
    expect(page.locator("#kb-detail")).to_contain_text("Create your first knowledge base")
    page.fill("#kb-name", "manuals")
    page.fill("#kb-description", "Device manuals")
    page.click("#kb-create-submit")
    expect(page.locator("#kb-title")).to_have_text("manuals")
    expect(page.locator("#kb-list li[data-name='manuals']")).to_contain_text("0 files · 0 chunks")
    expect(page.locator("#files-empty")).to_be_visible()
    assert app.services.library.get("manuals").record.description == "Device manuals"

    page.fill("#kb-name", "manuals")
    page.click("#kb-create-submit")
    expect(page.locator("#create-kb .form-error")).to_have_text(
        "knowledge base 'manuals' already exists"
    )


def test_upload_several_files_with_progress_and_failure_reasons(page: Any, app: Served) -> None:
    app.services.library.ensure("uploads")
    INDEXING.clear()
    page.goto(f"{app.url}/#/kbs/uploads")
    page.set_input_files(
        "#file-input",
        [
            {
                "name": "guide.md",
                "mimeType": "text/markdown",
                "buffer": b"# Guide\n" + b"x" * 400,
            },
            {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"some notes " * 20},
            {"name": "setup.exe.pdf", "mimeType": "application/pdf", "buffer": b"MZ\x90\x00"},
        ],
    )
    job = page.locator("#jobs .job").first
    expect(job).to_contain_text("Upload: 3 files")
    expect(job).to_have_attribute("data-status", "running")
    expect(job.locator(".job-files li[data-file='setup.exe.pdf'] .badge")).to_have_text("failed")
    # the job lists every file at once: the ones in hand are being indexed (the indexer waits)
    guide = job.locator(".job-files li[data-file='guide.md']")
    expect(guide).to_have_attribute("data-status", "running")
    expect(guide.locator(".badge")).to_have_text("indexing…")
    INDEXING.set()
    expect(job).to_have_attribute("data-status", "done")
    expect(job.locator(".job-label")).to_have_text(
        "Done: 2 indexed, 1 failed, 0 skipped, 0 removed"
    )
    # each file once, the reason on its own row
    bad = job.locator(".job-files li[data-file='setup.exe.pdf']")
    expect(bad.locator(".reason")).to_contain_text("Windows executable")
    expect(job.locator(".job-problems li")).to_have_count(0)

    rows = page.locator("#file-rows tr")
    expect(rows).to_have_count(3)
    failed = page.locator("#file-rows tr[data-name='setup.exe.pdf']")
    expect(failed.locator(".badge")).to_have_text("failed")
    expect(failed.locator(".reason")).to_contain_text("not a pdf file")
    expect(page.locator("#file-rows tr[data-name='guide.md'] .badge")).to_have_text("indexed")
    expect(page.locator("#kb-list li[data-name='uploads']")).to_contain_text("1 failed")


def test_an_unsupported_file_shows_once_with_its_reason_and_a_refused_upload_waits_for_nothing(
    page: Any, app: Served
) -> None:
    app.services.library.ensure("uploads")
    page.goto(f"{app.url}/#/kbs/uploads")
    xyz = {"name": "notes.xyz", "mimeType": "application/octet-stream", "buffer": b"x" * 40}
    txt = {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"some notes " * 20}
    page.set_input_files("#file-input", [txt, xyz])
    mixed = page.locator("#jobs .job").first
    expect(mixed).to_have_attribute("data-status", "done")
    expect(mixed.get_by_text("notes.xyz", exact=True)).to_have_count(1)  # listed once
    row = mixed.locator(".job-files li[data-file='notes.xyz']")
    expect(row.locator(".badge")).to_have_text("skipped")
    expect(row.locator(".reason")).to_contain_text(".xyz")

    page.set_input_files("#file-input", [xyz])  # only unsupported: refused before any job
    refused = page.locator("#jobs .job").first
    expect(refused).to_have_attribute("data-status", "failed")
    expect(refused.locator(".job-label")).to_contain_text("notes.xyz")
    only = refused.locator(".job-files li[data-file='notes.xyz']")
    expect(only).to_have_attribute("data-status", "refused")
    expect(only.locator(".badge")).to_have_text("not uploaded")


def test_drag_and_drop_uploads_the_dropped_files(page: Any, app: Served) -> None:
    app.services.library.ensure("dropped")
    page.goto(f"{app.url}/#/kbs/dropped")
    expect(page.locator("#dropzone")).to_be_visible()
    transfer = page.evaluate_handle("""() => {
        const data = new DataTransfer();
        data.items.add(new File(["保修期为两年。"], "保修.txt", { type: "text/plain" }));
        data.items.add(new File(["# Second\\n\\nsecond file"], "b.md", { type: "text/markdown" }));
        return data;
    }""")
    page.dispatch_event("#dropzone", "dragover", {"dataTransfer": transfer})
    expect(page.locator("#dropzone")).to_have_class("dropzone over")
    page.dispatch_event("#dropzone", "drop", {"dataTransfer": transfer})
    expect(page.locator("#jobs .job").first).to_have_attribute("data-status", "done")
    expect(page.locator("#file-rows tr")).to_have_count(2)
    expect(page.locator("#file-rows")).to_contain_text("保修.txt")
    assert sorted(f.name for f in app.services.library.get("dropped").files()) == [
        "b.md",
        "保修.txt",
    ]


def test_delete_a_file_sync_and_rebuild(page: Any, app: Served) -> None:
    app.services.library.ensure("synced")
    page.goto(f"{app.url}/#/kbs/synced")
    page.set_input_files(
        "#file-input",
        [
            {"name": "a.txt", "mimeType": "text/plain", "buffer": b"The warranty lasts two years."},
            {"name": "b.md", "mimeType": "text/markdown", "buffer": b"# B\n\nDescale monthly."},
        ],
    )
    expect(page.locator("#jobs .job").first).to_have_attribute("data-status", "done")
    expect(page.locator("#file-rows tr")).to_have_count(2)
    delete = page.locator("#file-rows tr[data-name='a.txt'] .file-delete")
    delete.click()
    delete.click()
    expect(page.locator("#file-rows tr")).to_have_count(1)
    assert [f.name for f in app.services.library.get("synced").files()] == ["b.md"]
    expect(page.locator("#kb-list li[data-name='synced']")).to_contain_text("1 file · ")

    page.click("#kb-sync")
    sync = page.locator("#jobs .job").first
    expect(sync).to_contain_text("Sync")
    expect(sync).to_have_attribute("data-status", "done")
    expect(sync.locator(".job-label")).to_have_text(
        "Done: 0 indexed, 0 failed, 1 skipped, 0 removed"
    )
    page.click("#kb-rebuild")
    rebuild = page.locator("#jobs .job").first
    expect(rebuild).to_contain_text("Rebuild")
    expect(rebuild.locator(".job-label")).to_have_text(
        "Done: 1 indexed, 0 failed, 0 skipped, 0 removed"
    )
    kinds = [job.kind for job in app.state.jobs.list_jobs("synced")]
    assert kinds == ["rebuild", "sync", "remove", "add"]  # newest first


def test_retrieval_test_shows_hits_with_scores(page: Any, app: Served, tmp_path: Path) -> None:
    add_files(app, "searched", {"warranty.pdf": pdf_bytes(WARRANTY)}, tmp_path)
    page.goto(f"{app.url}/#/kbs/searched")
    page.fill("#search-query", "warranty two years")
    page.fill("#search-topk", "1")
    page.select_option("#search-mode", "bm25")
    with page.expect_request("**/api/search") as sent:
        page.click("#search-submit")
    assert sent.value.post_data_json == {
        "kbs": ["searched"],
        "query": "warranty two years",
        "top_k": 1,
        "mode": "bm25",
    }
    hits = page.locator("#search-results .hit")
    expect(hits).to_have_count(1)
    expect(hits.first).to_contain_text("warranty.pdf")
    expect(hits.first).to_contain_text("page 3")
    score = float(hits.first.locator(".score-value").inner_text())
    assert 0.0 < score <= 1.0

    page.fill("#search-query", "nothing at all")
    page.fill("#search-threshold", "0.95")
    with page.expect_request("**/api/search") as sent:
        page.click("#search-submit")
    assert sent.value.post_data_json["threshold"] == 0.95
    expect(page.locator("#search-empty")).to_be_visible()


def test_delete_a_knowledge_base(page: Any, app: Served) -> None:
    app.services.library.ensure("manuals")
    app.services.library.ensure("old")
    page.goto(f"{app.url}/#/kbs/old")
    expect(page.locator("#kb-title")).to_have_text("old")
    delete = page.locator(".kb-actions button", has_text="Delete knowledge base")
    delete.click()
    page.locator(".kb-actions button.armed").click()
    expect(page.locator("#kb-list li")).to_have_count(1)
    expect(page.locator("#kb-detail")).to_contain_text("Pick a knowledge base")
    assert app.services.library.names() == ["manuals"]


def test_unknown_kb_shows_the_not_found_message(page: Any, app: Served) -> None:
    page.goto(f"{app.url}/#/kbs/ghost")
    expect(page.locator("#kb-detail .form-error")).to_have_text("no knowledge base named 'ghost'")


def test_files_indexed_by_another_job_update_by_themselves(
    page: Any, app: Served, tmp_path: Path
) -> None:
    kb = app.services.library.ensure("docs")
    faq = tmp_path / "faq.txt"
    faq.write_text("Returns are accepted within 30 days of purchase.", encoding="utf-8")
    catalog = app.services.library.catalog
    INDEXING.clear()
    catalog.set_file_status(kb.record.id, "faq.txt", path=str(faq), status="pending", error=None)
    app.state.jobs.submit(
        "docs",
        "add",
        add_tasks([("faq.txt", faq, sha256(faq.read_bytes()).hexdigest())], shared=False),
    )
    page.goto(f"{app.url}/#/kbs/docs")
    badge = page.locator("#file-rows tr[data-name='faq.txt'] .badge")
    expect(badge).to_have_text("pending")
    expect(page.locator("#kb-list li[data-name='docs']")).to_contain_text("1 pending")
    INDEXING.set()
    expect(badge).to_have_text("indexed")
    expect(page.locator("#kb-list li[data-name='docs']")).not_to_contain_text("pending")


def test_a_running_upload_is_cancelled_and_leaves_nothing_behind(page: Any, app: Served) -> None:
    app.services.library.ensure("halted")
    INDEXING.clear()  # the worker holds the files until the test lets the embedder go
    page.goto(f"{app.url}/#/kbs/halted")
    page.set_input_files(
        "#file-input",
        [
            {"name": "a.txt", "mimeType": "text/plain", "buffer": b"The kettle boils water."},
            {"name": "b.md", "mimeType": "text/markdown", "buffer": b"# B\n\nDescale monthly."},
        ],
    )
    job = page.locator("#jobs .job").first
    expect(job).to_have_attribute("data-status", "running")
    cancel = job.locator(".job-cancel")
    expect(cancel).to_have_text("Cancel")
    # The label changes on click; the server must have the cancel before the embedder goes.
    with page.expect_response(lambda r: r.request.method == "DELETE" and "/api/jobs/" in r.url):
        cancel.click()
    expect(job.locator(".job-label")).to_have_text(
        "Cancelling… the file being indexed is left as it was"
    )
    expect(cancel).to_be_disabled()
    INDEXING.set()  # the worker finishes its embedding batch, sees the cancel and stops
    expect(job).to_have_attribute("data-status", "cancelled")
    expect(job.locator(".job-label")).to_have_text(
        "Cancelled: 0 files finished and kept, 2 left as they were"
    )
    expect(cancel).to_be_hidden()
    for name in ("a.txt", "b.md"):
        row = job.locator(f".job-files li[data-file='{name}']")
        expect(row).to_have_attribute("data-status", "cancelled")
        expect(row.locator(".badge")).to_have_text("cancelled")
    expect(page.locator("#files-empty")).to_be_visible()  # nothing was added, nothing pending
    kb = app.services.library.get("halted")
    assert kb.files() == [] and kb.stats()["chunks"] == 0
