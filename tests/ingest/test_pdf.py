"""PDF loader: text layer per page, OCR fallback, corrupt/encrypted/empty files."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from fpdf import FPDF
from PIL import Image
from pypdf import PdfReader, PdfWriter

from kbchat.errors import BadInput, MissingDependency
from kbchat.ingest import LoadLimits, load_file

CJK_FONTS = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
)


def page_image() -> Image.Image:
    return Image.new("RGB", (200, 80), "white")


def make_pdf(path: Path, pages: list[str | None]) -> Path:
    """One page per entry: text, or None for a page holding only an image."""
    pdf = FPDF()
    pdf.set_font("helvetica", size=12)
    for content in pages:
        pdf.add_page()
        if content is None:
            pdf.image(page_image(), x=10, y=10, w=100)
        elif content:
            pdf.multi_cell(0, 8, content, new_x="LMARGIN", new_y="NEXT")
    pdf.output(str(path))
    return path


def test_one_document_per_page_with_page_numbers(tmp_path: Path) -> None:
    path = make_pdf(tmp_path / "manual.pdf", ["Install kbchat   with pip.", "", "Configure it."])
    docs = load_file(path, limits=LoadLimits(ocr=None))
    assert [(doc.page, doc.text) for doc in docs] == [
        (1, "Install kbchat with pip."),
        (3, "Configure it."),
    ]
    assert {doc.title for doc in docs} == {"manual"}
    assert {doc.source for doc in docs} == {"manual.pdf"}


def test_chinese_text_layer(tmp_path: Path) -> None:
    font = next((f for f in CJK_FONTS if Path(f).is_file()), None)
    if font is None:
        pytest.skip("no CJK font installed to generate a Chinese pdf")
    pdf = FPDF()
    pdf.add_font("cjk", "", font)
    pdf.set_font("cjk", size=12)
    pdf.add_page()
    pdf.multi_cell(0, 8, "保修期为两年。", new_x="LMARGIN", new_y="NEXT")
    path = tmp_path / "zh.pdf"
    pdf.output(str(path))
    assert load_file(path)[0].text == "保修期为两年。"


def test_pages_without_text_layer_are_ocrd(tmp_path: Path, fake_ocr: Any) -> None:
    path = make_pdf(tmp_path / "scan.pdf", ["Typed page.", None])
    docs = load_file(path)
    assert [(doc.page, doc.text) for doc in docs] == [
        (1, "Typed page."),
        (2, "recognised text\n识别出的文字"),
    ]
    assert len(fake_ocr.sizes) == 1


def test_missing_ocr_skips_scanned_pages_when_others_have_text(
    tmp_path: Path, no_ocr: None
) -> None:
    path = make_pdf(tmp_path / "mixed.pdf", ["Typed page.", None])
    assert [doc.page for doc in load_file(path)] == [1]


def test_missing_ocr_is_reported_when_no_page_has_text(tmp_path: Path, no_ocr: None) -> None:
    path = make_pdf(tmp_path / "scan.pdf", [None, None])
    with pytest.raises(MissingDependency, match="rapidocr-onnxruntime"):
        load_file(path)


def test_scanned_pdf_with_ocr_off(tmp_path: Path) -> None:
    path = make_pdf(tmp_path / "scan.pdf", [None])
    with pytest.raises(BadInput, match=r"scan\.pdf: no text found.*OCR is switched off"):
        load_file(path, limits=LoadLimits(ocr=None))


def test_zero_page_pdf(tmp_path: Path) -> None:
    path = tmp_path / "empty.pdf"
    with path.open("wb") as handle:
        PdfWriter().write(handle)
    with pytest.raises(BadInput, match=r"empty\.pdf: the pdf has 0 pages"):
        load_file(path)


def test_truncated_pdf(tmp_path: Path) -> None:
    good = make_pdf(tmp_path / "good.pdf", ["Some text " * 200] * 3)
    bad = tmp_path / "bad.pdf"
    bad.write_bytes(good.read_bytes()[:300])
    with pytest.raises(BadInput, match=r"bad\.pdf: corrupt or truncated pdf"):
        load_file(bad)


def test_not_a_pdf_at_all(tmp_path: Path) -> None:
    path = tmp_path / "fake.pdf"
    path.write_text("just text pretending to be a pdf")
    with pytest.raises(BadInput, match=r"fake\.pdf: corrupt or truncated pdf"):
        load_file(path)


def encrypt(source: Path, target: Path, user_password: str) -> Path:
    writer = PdfWriter(clone_from=PdfReader(source))
    writer.encrypt(user_password=user_password, owner_password="owner", algorithm="AES-128")
    buffer = io.BytesIO()
    writer.write(buffer)
    target.write_bytes(buffer.getvalue())
    return target


def test_password_protected_pdf_is_refused(tmp_path: Path) -> None:
    plain = make_pdf(tmp_path / "plain.pdf", ["Secret plans."])
    path = encrypt(plain, tmp_path / "locked.pdf", "secret")
    with pytest.raises(BadInput, match=r"locked\.pdf: the pdf is encrypted and needs a password"):
        load_file(path)


def test_pdf_encrypted_with_empty_user_password_is_read(tmp_path: Path) -> None:
    plain = make_pdf(tmp_path / "plain.pdf", ["Open to all readers."])
    path = encrypt(plain, tmp_path / "restricted.pdf", "")
    assert load_file(path)[0].text == "Open to all readers."
