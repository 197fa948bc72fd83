"""The knowledge-base page in a real browser against the fake API."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_create_a_kb_then_a_duplicate_shows_the_server_error(
    page: Any, fake_server: Any, fake_state: Any
) -> None:
    page.goto(f"{fake_server.url}/#/kbs")
    expect(page.locator("#kb-list")).to_contain_text("No knowledge bases yet.")
    expect(page.locator("#kb-detail")).to_contain_text("Create your first knowledge base")
    page.fill("#kb-name", "manuals")
    page.fill("#kb-description", "Device manuals")
    page.click("#kb-create-submit")
    expect(page.locator("#kb-title")).to_have_text("manuals")
    expect(page.locator("#kb-list li[data-name='manuals']")).to_contain_text("0 files · 0 chunks")
    expect(page.locator("#files-empty")).to_be_visible()
    assert fake_state.kbs["manuals"]["description"] == "Device manuals"

    page.fill("#kb-name", "manuals")
    page.click("#kb-create-submit")
    expect(page.locator("#create-kb .form-error")).to_have_text(
        "knowledge base 'manuals' already exists"
    )


def test_upload_several_files_with_progress_and_failure_reasons(
    page: Any, fake_server: Any, fake_state: Any
) -> None:
    fake_state.add_kb("manuals")
    page.goto(f"{fake_server.url}/#/kbs/manuals")
    page.set_input_files(
        "#file-input",
        [
            {"name": "guide.md", "mimeType": "text/markdown", "buffer": b"# Guide\n" + b"x" * 400},
            {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"some notes " * 20},
            {"name": "setup.exe.pdf", "mimeType": "application/pdf", "buffer": b"MZ\x90\x00"},
        ],
    )
    job = page.locator("#jobs .job").first
    expect(job).to_contain_text("Upload: 3 files")
    expect(job).to_have_attribute("data-status", "running")
    expect(job).to_have_attribute("data-status", "done")
    expect(job.locator(".job-label")).to_have_text(
        "Done: 2 indexed, 1 failed, 0 skipped, 0 removed"
    )
    expect(job.locator(".job-problems li.failed")).to_contain_text("looks like an executable")
    assert fake_state.uploads == [["guide.md", "notes.txt", "setup.exe.pdf"]]

    rows = page.locator("#file-rows tr")
    expect(rows).to_have_count(3)
    failed = page.locator("#file-rows tr[data-name='setup.exe.pdf']")
    expect(failed.locator(".badge")).to_have_text("failed")
    expect(failed.locator(".reason")).to_contain_text("not a supported document")
    expect(page.locator("#file-rows tr[data-name='guide.md'] .badge")).to_have_text("indexed")
    expect(page.locator("#kb-list li[data-name='manuals']")).to_contain_text("1 failed")


def test_drag_and_drop_uploads_the_dropped_files(
    page: Any, fake_server: Any, fake_state: Any
) -> None:
    fake_state.add_kb("manuals")
    page.goto(f"{fake_server.url}/#/kbs/manuals")
    expect(page.locator("#dropzone")).to_be_visible()
    transfer = page.evaluate_handle("""() => {
        const data = new DataTransfer();
        data.items.add(new File(["保修期为两年。"], "保修.txt", { type: "text/plain" }));
        data.items.add(new File(["second file"], "b.md", { type: "text/markdown" }));
        return data;
    }""")
    page.dispatch_event("#dropzone", "dragover", {"dataTransfer": transfer})
    expect(page.locator("#dropzone")).to_have_class("dropzone over")
    page.dispatch_event("#dropzone", "drop", {"dataTransfer": transfer})
    expect(page.locator("#jobs .job").first).to_have_attribute("data-status", "done")
    expect(page.locator("#file-rows tr")).to_have_count(2)
    expect(page.locator("#file-rows")).to_contain_text("保修.txt")
    assert fake_state.uploads == [["保修.txt", "b.md"]]


def test_delete_a_file_sync_and_rebuild(page: Any, fake_server: Any, fake_state: Any) -> None:
    fake_state.add_kb("manuals", files={"a.pdf": 4, "b.md": 2})
    page.goto(f"{fake_server.url}/#/kbs/manuals")
    expect(page.locator("#file-rows tr")).to_have_count(2)
    delete = page.locator("#file-rows tr[data-name='a.pdf'] .file-delete")
    delete.click()
    delete.click()
    expect(page.locator("#file-rows tr")).to_have_count(1)
    assert list(fake_state.files["manuals"]) == ["b.md"]
    expect(page.locator("#kb-list li[data-name='manuals']")).to_contain_text("1 file · 2 chunks")

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
    assert [job["kind"] for job in fake_state.jobs.values()] == ["remove", "sync", "rebuild"]


def test_retrieval_test_shows_hits_with_scores(
    page: Any, fake_server: Any, fake_state: Any
) -> None:
    fake_state.add_kb("manuals", files={"warranty.pdf": 4})
    page.goto(f"{fake_server.url}/#/kbs/manuals")
    page.fill("#search-query", "warranty")
    page.fill("#search-topk", "1")
    page.select_option("#search-mode", "bm25")
    page.click("#search-submit")
    hits = page.locator("#search-results .hit")
    expect(hits).to_have_count(1)
    expect(hits.first).to_contain_text("warranty.pdf")
    expect(hits.first).to_contain_text("page 3")
    expect(hits.first.locator(".score-value")).to_have_text("0.82")
    assert fake_state.search_requests[-1] == {
        "kbs": ["manuals"],
        "query": "warranty",
        "top_k": 1,
        "mode": "bm25",
    }

    page.fill("#search-query", "nothing at all")
    page.fill("#search-threshold", "0.9")
    page.click("#search-submit")
    expect(page.locator("#search-empty")).to_be_visible()
    expect(page.locator("#search-results .note")).to_have_text("no passage scored above 0.25")
    assert fake_state.search_requests[-1]["threshold"] == 0.9


def test_delete_a_knowledge_base(page: Any, fake_server: Any, fake_state: Any) -> None:
    fake_state.add_kb("manuals")
    fake_state.add_kb("old")
    page.goto(f"{fake_server.url}/#/kbs/old")
    expect(page.locator("#kb-title")).to_have_text("old")
    delete = page.locator(".kb-actions button", has_text="Delete knowledge base")
    delete.click()
    page.locator(".kb-actions button.armed").click()
    expect(page.locator("#kb-list li")).to_have_count(1)
    expect(page.locator("#kb-detail")).to_contain_text("Pick a knowledge base")
    assert list(fake_state.kbs) == ["manuals"]


def test_unknown_kb_shows_the_not_found_message(page: Any, fake_server: Any) -> None:
    page.goto(f"{fake_server.url}/#/kbs/ghost")
    expect(page.locator("#kb-detail .form-error")).to_have_text("no knowledge base named 'ghost'")


def test_files_indexed_by_another_job_update_by_themselves(
    page: Any, fake_server: Any, fake_state: Any
) -> None:
    from fake_api import file_json

    fake_state.add_kb("docs")
    fake_state.files["docs"]["faq.txt"] = file_json("faq.txt", "pending")
    page.goto(f"{fake_server.url}/#/kbs/docs")
    badge = page.locator("#file-rows tr[data-name='faq.txt'] .badge")
    expect(badge).to_have_text("pending")
    expect(page.locator("#kb-list li[data-name='docs']")).to_contain_text("1 pending")
    fake_state.files["docs"]["faq.txt"] = file_json("faq.txt", "indexed", chunks=4, size=900)
    expect(badge).to_have_text("indexed", timeout=6_000)
    expect(page.locator("#kb-list li[data-name='docs']")).not_to_contain_text("pending")
