"""Shapes of a knowledge-base file opened as a source: its chunks and its text."""

from __future__ import annotations

from pydantic import Field

from kbchat.shapes import Shape
from kbchat.types import FileStatus


class ChunkInfo(Shape):
    """One chunk of a file, as indexed."""

    id: int = Field(description="The chunk id (search hits carry it as chunk_id).")
    position: int = Field(description="Order of the chunk in its file, from 0.")
    text: str
    page: int | None = Field(description="Page number (from 1) for pdf pages.")
    sheet: str | None = Field(description="Sheet name for spreadsheets.")
    slide: int | None = Field(description="Slide number (from 1) for presentations.")
    headings: list[str] = Field(description="The headings above the chunk, outermost first.")


class FileChunks(Shape):
    """A page of a file's chunks in file order."""

    kb: str
    file: str
    status: FileStatus
    error: str | None = Field(description="Why the file failed or was skipped.")
    total: int = Field(description="Chunks the file has in all.")
    offset: int = Field(description="Index of the first chunk in this page.")
    chunks: list[ChunkInfo]


class DocumentText(Shape):
    """One part of a file as its loader reads it: the whole text, a page, a sheet, a slide."""

    text: str
    page: int | None
    sheet: str | None
    slide: int | None


class FileText(Shape):
    """A file's text as its loader reads it now (images are not read again: see chunks)."""

    kb: str
    file: str
    content_type: str = Field(description="Media type of the original file.")
    changed: bool = Field(description="The file on disk differs from the version indexed.")
    documents: list[DocumentText]
