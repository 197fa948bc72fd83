"""kbchat's own short documentation, shipped as a sample knowledge base (``kbchat demo``)."""

from __future__ import annotations

from pathlib import Path


def sample_dir() -> Path:
    """The folder holding the sample documents (md, txt, pdf, docx, xlsx, png; en and zh)."""
    return Path(__file__).resolve().parent
