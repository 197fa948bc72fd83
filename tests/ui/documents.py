"""Small office documents made in the tests: a pdf of pages (fpdf2) and a docx (python-docx)."""

from __future__ import annotations

import io

from docx import Document
from fpdf import FPDF


def pdf_bytes(pages: list[str]) -> bytes:
    """A pdf with one page per text (Helvetica: Latin text only)."""
    pdf = FPDF()
    pdf.set_font("helvetica", size=14)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 10, text, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def docx_bytes(heading: str, paragraphs: list[str]) -> bytes:
    """A Word document: a heading, then the paragraphs."""
    document = Document()
    document.add_heading(heading, level=1)
    for text in paragraphs:
        document.add_paragraph(text)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()
