"""Sources in the page, against the real server with a scripted model: a citation opens its pdf
at the cited page with the passage highlighted (bundled PDF.js); the file table lists failed
uploads with their reason, retries them, and shows "deleting…" until a delete has run."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from documents import pdf_bytes
from harness import LiveServer, screenshot
from playwright.sync_api import expect

from kbchat.app import Services, build
from kbchat.config import load_settings
from kbchat.kb.jobs import Task
from kbchat.kb.worker import OPS, Work
from kbchat.testing.fakes import ScriptedChatModel
from tests.server.support import NO_ANSWER_BAR

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PAGES = [
    "Unpacking. Remove the K3 kettle from its box and keep the receipt.",
    "Cleaning. Descale the kettle every month with white vinegar.",
    "Warranty. The K3 kettle has a two year warranty from the date of purchase.",
]
REPLY = "The K3 kettle has a two year warranty from the date of purchase [1]."


def cjk_pdf(lines: list[str]) -> bytes:
    """One page of Chinese text in a font the pdf does not embed (STSong-Light, UniGB-UTF16-H):
    a viewer needs the predefined CMaps (vendor/pdfjs/cmaps) to read it, as for many Chinese
    office documents."""
    shown = " ".join(f"<{line.encode('utf-16-be').hex()}> Tj T*" for line in lines)
    content = f"BT /F1 20 Tf 72 760 Td 26 TL {shown} ET"
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        "/Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
        f"<< /Length {len(content)} >>\nstream\n{content}\nendstream",
        "<< /Type /Font /Subtype /Type0 /BaseFont /STSong-Light /Encoding /UniGB-UTF16-H "
        "/DescendantFonts [6 0 R] >>",
        "<< /Type /Font /Subtype /CIDFontType0 /BaseFont /STSong-Light /CIDSystemInfo "
        "<< /Registry (Adobe) /Ordering (GB1) /Supplement 4 >> /FontDescriptor 7 0 R /DW 1000 >>",
        "<< /Type /FontDescriptor /FontName /STSong-Light /Flags 6 /FontBBox [-25 -254 1000 880] "
        "/ItalicAngle 0 /Ascent 880 /Descent -120 /CapHeight 880 /StemV 93 >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{offset:010d} 00000 n \n" for offset in offsets).encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n".encode()
    return bytes(out + b"%%EOF\n")


class Served:
    """The real app on a socket, and its services and server state for the test to drive."""

    def __init__(self, server: LiveServer, services: Services, app: Any) -> None:
        self.url = server.url
        self.services = services
        self.app = app

    @property
    def state(self) -> Any:
        return self.app.state.kbchat


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    from kbchat.server.app import create_app

    settings = load_settings(embedder={"backend": "hash"}, chat=NO_ANSWER_BAR)
    services = build(settings)
    services.models.add(settings.default_model, ScriptedChatModel([REPLY], name="scripted"))
    app = create_app(settings, services=services)
    with LiveServer(app) as server:
        yield Served(server, services, app)
    services.close()


def test_a_pdf_citation_opens_at_its_page_with_the_passage_highlighted(
    page: Any, served: Served, tmp_path: Path
) -> None:
    folder = tmp_path / "manuals"
    folder.mkdir()
    (folder / "k3-manual.pdf").write_bytes(pdf_bytes(PAGES))
    outcomes = served.services.library.ensure("manuals").add([folder])
    assert [o.status for o in outcomes] == ["indexed"]

    page.goto(served.url)
    page.click("#kb-summary")
    page.check("#kb-picker input[value='manuals']")
    page.click("#messages")
    page.fill("#question", "How long is the K3 kettle warranty?")
    page.press("#question", "Enter")
    answer = page.locator(".msg.assistant").last
    expect(answer).not_to_have_class("msg assistant streaming")
    answer.locator("button.cite").first.click()
    source = answer.locator(".source[open]").first
    expect(source.locator(".source-where")).to_contain_text("page 3")
    source.locator(".source-open").click()

    viewer = page.locator("#source-viewer")
    expect(viewer).to_be_visible()
    expect(viewer.locator("#viewer-title")).to_have_text("k3-manual.pdf")
    drawn = viewer.locator(".pdf-page[data-page='3']")
    expect(drawn).to_have_attribute("data-highlighted", "1")
    expect(viewer.locator("#pdf-counter")).to_have_text("page 3 of 3")
    passage = drawn.locator("mark.cited-passage")
    expect(passage).to_have_count(1)
    assert "two year warranty" in passage.inner_text()
    box = passage.bounding_box()
    line = passage.locator("xpath=..").bounding_box()
    assert box and line and box["height"] > 10
    # over the quoted words: most of the line, in the line, ending where the line ends
    assert line["x"] <= box["x"] and box["width"] > 0.7 * line["width"]
    assert abs(box["x"] + box["width"] - (line["x"] + line["width"])) < 0.05 * line["width"]
    canvas_drawn = "(c) => c.getContext('2d').getImageData(0, 0, c.width, c.height).data"
    canvas_drawn += ".some((v, i) => i % 4 !== 3 && v < 128)"
    assert drawn.locator("canvas").evaluate(canvas_drawn), "the page's text was not drawn"
    screenshot(page, "sources-pdf-citation")

    viewer.locator("#pdf-prev").click()
    expect(viewer.locator(".pdf-page[data-page='2']")).to_have_attribute("data-highlighted", "0")
    viewer.locator("[data-tab='chunks']").click()
    chunks = viewer.locator("#chunk-list .chunk")
    expect(chunks).to_have_count(3)
    expect(viewer.locator("#chunk-list .chunk.cited")).to_contain_text("page 3")
    expect(viewer.locator("#chunk-list .chunk.cited mark.cited-passage")).to_contain_text(
        "warranty"
    )
    screenshot(page, "sources-chunks")
    viewer.locator("#viewer-close").click()
    expect(viewer).to_be_hidden()


def test_a_chinese_pdf_without_embedded_fonts_opens_highlighted(
    page: Any, served: Served, tmp_path: Path
) -> None:
    folder = tmp_path / "手册"
    folder.mkdir()
    lines = ["第一章 安装说明。", "K3 水壶保修两年，自购买之日起计算。"]
    (folder / "保修.pdf").write_bytes(cjk_pdf(lines))
    assert [o.status for o in served.services.library.ensure("zh").add([folder])] == ["indexed"]
    cmaps: list[str] = []
    page.on("request", lambda r: cmaps.append(r.url) if "/pdfjs/cmaps/" in r.url else None)
    page.goto(f"{served.url}/#/kbs/zh")
    page.fill("#search-query", "保修两年")
    page.click("#search-submit")
    page.locator("#search-results .hit .source-open").first.click()
    drawn = page.locator("#source-viewer .pdf-page[data-page='1']")
    expect(drawn).not_to_have_attribute("data-highlighted", "0")
    expect(drawn.locator("mark.cited-passage").last).to_contain_text("保修两年")
    assert any(url.endswith("/UniGB-UTF16-H.bcmap") for url in cmaps), cmaps
    canvas_drawn = "(c) => c.getContext('2d').getImageData(0, 0, c.width, c.height).data"
    canvas_drawn += ".some((v, i) => i % 4 !== 3 && v < 128)"
    assert drawn.locator("canvas").evaluate(canvas_drawn), "the Chinese text was not drawn"
    screenshot(page, "sources-chinese-pdf")


def test_a_search_hit_opens_its_text_file_at_the_passage(page: Any, served: Served) -> None:
    chapters = [
        "第一章 安装。" + "请把水壶放在平稳的台面上，远离水槽和炉灶。" * 25,
        "第二章 保修。K3 水壶保修两年，自购买之日起计算。" + "保修期内免费维修。" * 50,
        "第三章 清洁。" + "每月用白醋除垢一次，然后用清水冲洗两遍。" * 25,
    ]
    served.services.library.ensure("notes")
    page.goto(f"{served.url}/#/kbs/notes")
    page.set_input_files(
        "#file-input",
        [{"name": "说明.txt", "mimeType": "text/plain", "buffer": "\n\n".join(chapters).encode()}],
    )
    expect(page.locator("#file-rows tr .badge")).to_have_text(["indexed"])
    page.fill("#search-query", "保修两年")
    page.click("#search-submit")
    hit = page.locator("#search-results .hit").first
    expect(hit.locator(".hit-text")).to_contain_text("保修两年")
    hit.locator(".source-open").click()
    viewer = page.locator("#source-viewer")
    expect(viewer.locator(".viewer-text")).to_contain_text("第三章 清洁")  # the whole file
    passage = viewer.locator("mark.cited-passage")
    expect(passage).to_contain_text("K3 水壶保修两年")
    assert "第三章" not in passage.inner_text() and "第一章" not in passage.inner_text()
    screenshot(page, "sources-text-hit")


def test_failed_uploads_are_listed_with_retry_and_deleting_waits_for_the_job(
    page: Any, served: Served
) -> None:
    served.services.library.ensure("docs")
    page.goto(f"{served.url}/#/kbs/docs")
    page.set_input_files(
        "#file-input",
        [
            {"name": "broken.pdf", "mimeType": "application/pdf", "buffer": b"%PDF-1.4 cut"},
            {"name": "empty.txt", "mimeType": "text/plain", "buffer": b""},
            {"name": "kettle.txt", "mimeType": "text/plain", "buffer": b"The K3 kettle."},
        ],
    )
    expect(page.locator("#jobs .job").first).to_have_attribute("data-status", "done")
    broken = page.locator("#file-rows tr[data-name='broken.pdf']")
    empty = page.locator("#file-rows tr[data-name='empty.txt']")
    expect(broken.locator(".badge")).to_have_text("failed")
    expect(broken.locator(".reason")).to_contain_text("broken.pdf")
    expect(empty.locator(".reason")).to_contain_text("empty")
    screenshot(page, "sources-failed-uploads")

    # the kept copy is repaired on the server; Retry reads it again
    listed = {r.name: r for r in served.services.library.get("docs").files()}
    Path(listed["broken.pdf"].path).write_bytes(pdf_bytes(["The K3 kettle manual."]))
    broken.locator(".file-retry").click()
    expect(broken.locator(".badge")).to_have_text("indexed")
    expect(broken.locator(".reason")).to_have_count(0)

    # a refused upload kept no copy: it is chosen again and uploaded under its name
    with page.expect_file_chooser() as chooser:
        empty.locator(".file-reupload").click()
    chooser.value.set_files(
        [{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"Descale monthly."}]
    )
    expect(empty.locator(".badge")).to_have_text("indexed")

    # a delete waits behind a running job: the row says "deleting…" until it has run
    release = threading.Event()

    def hold(work: Work) -> None:
        release.wait(60)

    OPS["hold"] = hold
    served.state.jobs.submit("docs", "add", [Task("hold")])
    kettle = page.locator("#file-rows tr[data-name='kettle.txt']")
    kettle.locator(".file-delete").click()
    kettle.locator(".file-delete").click()
    expect(kettle.locator(".badge")).to_have_text("deleting…")
    assert "kettle.txt" in {r.name for r in served.services.library.get("docs").files()}
    screenshot(page, "sources-deleting")
    release.set()
    del OPS["hold"]
    expect(kettle).to_have_count(0)
    expect(page.locator(".toast").last).to_contain_text("deleted")
