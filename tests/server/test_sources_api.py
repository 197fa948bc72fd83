"""A knowledge base's files as sources: original, text, chunks, retry; failed uploads listed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from fpdf import FPDF
from openpyxl import Workbook
from pptx import Presentation

from kbchat.config import Settings
from kbchat.server import create_app
from kbchat.server.auth import FileKeys, add_key, keys_path
from tests.server.support import DOCS, make_services, make_settings, upload, wait_job


def pdf_bytes(pages: list[str]) -> bytes:
    pdf = FPDF()
    pdf.set_font("helvetica", size=12)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 8, text, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


MANUAL = pdf_bytes(["Unpack the K3 kettle.", "The K3 kettle has a two year warranty."])


def stored_path(client: TestClient, kb: str, name: str) -> Path:
    listed = {f["name"]: f for f in client.get(f"/api/kbs/{kb}/files").json()}
    return Path(listed[name]["path"])


@pytest.fixture
def sources_kb(client: TestClient) -> str:
    assert client.post("/api/kbs", json={"name": "docs"}).status_code == 201
    job = upload(
        client,
        "docs",
        {
            **DOCS,
            "manual.pdf": MANUAL,
            "guides/page.html": b"<h1>Hi</h1><p>Welcome.</p>",
            "说明/保修.txt": "K3 水壶保修两年。".encode(),
        },
    )
    assert {f["status"] for f in job["files"]} == {"indexed"}, job
    return "docs"


def test_the_original_is_sent_with_its_type(client: TestClient, sources_kb: str) -> None:
    pdf = client.get(f"/api/kbs/{sources_kb}/original/manual.pdf")
    assert pdf.status_code == 200 and pdf.content == MANUAL
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.headers["content-disposition"].startswith("inline")
    assert pdf.headers["x-content-type-options"] == "nosniff"
    saved = client.get(f"/api/kbs/{sources_kb}/original/manual.pdf?download=true")
    assert saved.headers["content-disposition"].startswith("attachment")

    text = client.get(f"/api/kbs/{sources_kb}/original/kettle.txt")
    assert text.content == DOCS["kettle.txt"]
    assert text.headers["content-type"] == "text/plain; charset=utf-8"
    assert "sandbox" in text.headers["content-security-policy"]
    chinese = client.get(f"/api/kbs/{sources_kb}/original/说明/保修.txt")
    assert chinese.text == "K3 水壶保修两年。"
    assert "filename*=utf-8''%E4%BF%9D%E4%BF%AE.txt" in chinese.headers["content-disposition"]
    markdown = client.get(f"/api/kbs/{sources_kb}/original/tea.md")
    assert markdown.headers["content-type"].startswith("text/markdown")


def test_markup_is_never_shown_on_the_page_origin(client: TestClient, sources_kb: str) -> None:
    page = client.get(f"/api/kbs/{sources_kb}/original/guides/page.html")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["content-disposition"].startswith("attachment")
    assert "sandbox" in page.headers["content-security-policy"]


def test_unknown_files_and_traversal_are_404_naming_the_file(
    client: TestClient, sources_kb: str, settings: Settings
) -> None:
    (settings.home / "secret.txt").write_text("not a kb file", encoding="utf-8")
    # escaped so that the client sends them as they are; the server decodes them
    for name in ("nope.pdf", "%2e%2e%2fsecret.txt", "%2e%2e/%2e%2e/secret.txt", "..%5csecret.txt"):
        for view in ("original", "chunks", "text"):
            response = client.get(f"/api/kbs/{sources_kb}/{view}/{name}")
            assert response.status_code == 404, (name, view, response.text)
            assert "no file " in response.json()["error"]["message"]
    for name in ("../secret.txt", "../../../secret.txt"):  # the client resolves these itself
        response = client.get(f"/api/kbs/{sources_kb}/original/{name}")
        assert response.status_code == 404 and b"not a kb file" not in response.content
    absolute = client.get(f"/api/kbs/{sources_kb}/original/{settings.home}/secret.txt")
    assert absolute.status_code == 404
    missing_kb = client.get("/api/kbs/other/original/kettle.txt")
    assert missing_kb.status_code == 404
    assert missing_kb.json()["error"]["message"] == "no knowledge base named 'other'"


def test_an_original_gone_from_disk_is_a_404_naming_it(client: TestClient, sources_kb: str) -> None:
    stored_path(client, sources_kb, "kettle.txt").unlink()
    response = client.get(f"/api/kbs/{sources_kb}/original/kettle.txt")
    assert response.status_code == 404
    message = response.json()["error"]["message"]
    assert message.startswith("kettle.txt: the original is gone from") and "docs" in message
    # a folder or pipe standing where the file was is not sent either
    stored_path(client, sources_kb, "tea.md").unlink()
    stored_path(client, sources_kb, "tea.md").mkdir()
    assert client.get(f"/api/kbs/{sources_kb}/original/tea.md").status_code == 404


def test_chunks_in_file_order_with_their_pages(client: TestClient, sources_kb: str) -> None:
    listing = client.get(f"/api/kbs/{sources_kb}/chunks/manual.pdf").json()
    assert listing["file"] == "manual.pdf" and listing["status"] == "indexed"
    assert listing["total"] == len(listing["chunks"]) == 2
    assert [c["position"] for c in listing["chunks"]] == [0, 1]
    assert [c["page"] for c in listing["chunks"]] == [1, 2]
    assert "two year warranty" in listing["chunks"][1]["text"]
    hits = client.post("/api/search", json={"kbs": ["docs"], "query": "warranty"}).json()["hits"]
    ids = {c["id"] for c in listing["chunks"]}
    assert any(hit["chunk_id"] in ids for hit in hits if hit["file"] == "manual.pdf")

    second = client.get(f"/api/kbs/{sources_kb}/chunks/manual.pdf?offset=1&limit=1").json()
    assert second["total"] == 2 and second["offset"] == 1
    assert [c["page"] for c in second["chunks"]] == [2]
    assert client.get(f"/api/kbs/{sources_kb}/chunks/manual.pdf?limit=0").status_code == 422


def test_text_as_the_loader_reads_it(client: TestClient, sources_kb: str) -> None:
    body = client.get(f"/api/kbs/{sources_kb}/text/tea.md").json()
    assert body["content_type"] == "text/markdown" and body["changed"] is False
    assert "Brew green tea at 80 degrees" in body["documents"][0]["text"]
    pages = client.get(f"/api/kbs/{sources_kb}/text/manual.pdf").json()["documents"]
    assert [d["page"] for d in pages] == [1, 2]
    stored_path(client, sources_kb, "tea.md").write_text("# Tea\n\nNew text.", encoding="utf-8")
    assert client.get(f"/api/kbs/{sources_kb}/text/tea.md").json()["changed"] is True


def office_files(tmp_path: Path) -> dict[str, bytes]:
    workbook = Workbook()
    prices = workbook.active
    assert prices is not None
    prices.title = "价格"
    prices.append(["model", "price"])
    prices.append(["K3", 399])
    workbook.create_sheet("Warranty").append(["K3", "two years"])
    workbook.save(tmp_path / "k3.xlsx")
    deck = Presentation()
    for title in ("Launch", "Warranty terms"):
        deck.slides.add_slide(deck.slide_layouts[5]).shapes.title.text = title
    deck.save(str(tmp_path / "k3.pptx"))
    return {name: (tmp_path / name).read_bytes() for name in ("k3.xlsx", "k3.pptx")}


def test_sheets_and_slides_come_one_part_each_with_their_chunks(
    client: TestClient, tmp_path: Path
) -> None:
    client.post("/api/kbs", json={"name": "office"})
    job = upload(client, "office", office_files(tmp_path))
    assert {f["status"] for f in job["files"]} == {"indexed"}, job
    sheets = client.get("/api/kbs/office/text/k3.xlsx").json()["documents"]
    assert [d["sheet"] for d in sheets] == ["价格", "Warranty"]
    assert "399" in sheets[0]["text"] and "two years" in sheets[1]["text"]
    slides = client.get("/api/kbs/office/text/k3.pptx").json()
    assert [d["slide"] for d in slides["documents"]] == [1, 2]
    assert slides["content_type"].endswith("presentationml.presentation")
    chunks = client.get("/api/kbs/office/chunks/k3.xlsx").json()["chunks"]
    assert {c["sheet"] for c in chunks} == {"价格", "Warranty"}
    original = client.get("/api/kbs/office/original/k3.xlsx")
    assert original.headers["content-type"].endswith("spreadsheetml.sheet")
    assert original.headers["content-disposition"].startswith("attachment")


def test_failed_uploads_are_listed_and_can_be_retried_or_deleted(client: TestClient) -> None:
    client.post("/api/kbs", json={"name": "k"})
    broken = b"%PDF-1.4\nnot really a pdf"
    job = upload(client, "k", {"broken.pdf": broken, "empty.txt": b"", "tool.exe": b"x"})
    assert {f["name"]: f["status"] for f in job["files"]} == {
        "broken.pdf": "failed",
        "empty.txt": "failed",
        "tool.exe": "skipped",
    }
    listed = {f["name"]: f for f in client.get("/api/kbs/k/files").json()}
    assert set(listed) == {"broken.pdf", "empty.txt", "tool.exe"}
    assert listed["empty.txt"]["status"] == "failed" and "empty" in listed["empty.txt"]["error"]
    assert "unsupported file type .exe" in listed["tool.exe"]["error"]
    assert listed["broken.pdf"]["error"] and listed["broken.pdf"]["path"]  # its copy is kept

    no_copy = client.post("/api/kbs/k/retry/empty.txt")
    assert no_copy.status_code == 409
    message = no_copy.json()["error"]["message"]
    assert (
        "empty.txt was refused when it was uploaded (" in message and "upload it again" in message
    )
    again = client.post("/api/kbs/k/retry/broken.pdf")
    assert again.status_code == 202
    assert [f["status"] for f in wait_job(client, again.json()["job"])["files"]] == ["failed"]

    Path(listed["broken.pdf"]["path"]).write_bytes(MANUAL)  # e.g. a file repaired on the server
    fixed = wait_job(client, client.post("/api/kbs/k/retry/broken.pdf").json()["job"])
    assert [f["status"] for f in fixed["files"]] == ["indexed"]
    indexed = client.post("/api/kbs/k/retry/broken.pdf")
    assert indexed.status_code == 409 and "not failed" in indexed.json()["error"]["message"]

    removed = client.delete("/api/kbs/k/files/empty.txt")
    assert wait_job(client, removed.json()["job"])["files"][0]["status"] == "removed"
    assert "empty.txt" not in {f["name"] for f in client.get("/api/kbs/k/files").json()}


def test_a_refused_update_keeps_the_indexed_version_and_says_why(
    client: TestClient, sources_kb: str
) -> None:
    response = client.post(
        f"/api/kbs/{sources_kb}/files",
        params={"overwrite": "true"},
        files=[("files", ("kettle.txt", b"", "text/plain"))],
    )
    wait_job(client, response.json()["job"])
    listed = {f["name"]: f for f in client.get(f"/api/kbs/{sources_kb}/files").json()}
    assert listed["kettle.txt"]["status"] == "indexed"
    assert listed["kettle.txt"]["error"].startswith("update failed, previous version kept")


@pytest.fixture
def keyed(settings: Settings) -> Iterator[tuple[TestClient, dict[str, dict[str, str]]]]:
    secured = make_settings(host="0.0.0.0")
    path = keys_path(secured)
    keys = {
        who: {"Authorization": f"Bearer {add_key(FileKeys(path), who, roles)}"}
        for who, roles in (
            ("admin", {"*": "admin"}),
            ("reader", {"docs": "read"}),
            ("stranger", {"other": "admin"}),
        )
    }
    services = make_services(secured)
    with TestClient(create_app(secured, services=services)) as client:
        yield client, keys
    services.close()


def test_sources_follow_the_knowledge_base_permissions(
    keyed: tuple[TestClient, dict[str, dict[str, str]]],
) -> None:
    client, keys = keyed
    client.post("/api/kbs", json={"name": "docs"}, headers=keys["admin"])
    upload(client, "docs", {**DOCS, "bad.pdf": b"%PDF-1.4 broken"}, headers=keys["admin"])
    original = "/api/kbs/docs/original/kettle.txt"
    assert client.get(original).status_code == 401
    assert client.get(original, headers=keys["reader"]).content == DOCS["kettle.txt"]
    for view in ("original", "chunks", "text"):
        refused = client.get(f"/api/kbs/docs/{view}/kettle.txt", headers=keys["stranger"])
        assert refused.status_code == 404  # the same answer as for a missing knowledge base
        assert refused.json()["error"]["message"] == "no knowledge base named 'docs'"
    retry = client.post("/api/kbs/docs/retry/bad.pdf", headers=keys["reader"])
    assert retry.status_code == 403 and retry.json()["error"]["type"] == "Forbidden"
    assert client.post("/api/kbs/docs/retry/bad.pdf", headers=keys["admin"]).status_code == 202
