"""Shapes shared by the loaders: heading-path sections and self-describing table rows."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import replace

from kbchat.types import Document

_SPACES = re.compile(r"\s+")


def clean_cell(value: object) -> str:
    """One table cell as a single line: whitespace (newlines included) collapsed."""
    if value is None:
        return ""
    return _SPACES.sub(" ", str(value)).strip()


def table_lines(rows: Iterable[Sequence[object]]) -> list[str]:
    """Turn rows into lines of ``header: value | header: value``.

    The first non-empty row is the header; empty header cells become ``column N``.
    Empty cells are skipped, empty rows and repeated header rows are dropped. A table
    that is only a header comes back as one ``a | b | c`` line.
    """
    header: list[str] | None = None
    lines: list[str] = []
    for raw in rows:
        cells = [clean_cell(cell) for cell in raw]
        if not any(cells):
            continue
        if header is None:
            header = [cell or f"column {i}" for i, cell in enumerate(cells, 1)]
            continue
        if cells[: len(header)] == header:
            continue
        pairs = [
            f"{header[i] if i < len(header) else f'column {i + 1}'}: {cell}"
            for i, cell in enumerate(cells)
            if cell
        ]
        lines.append(" | ".join(pairs))
    if header is not None and not lines:
        lines.append(" | ".join(cell for cell in header if not cell.startswith("column ")))
    return [line for line in lines if line]


class SectionBuilder:
    """Collects lines under a heading path and emits one Document per section.

    A section with no body (a heading directly followed by a sub-heading) is not emitted
    alone: its heading line is carried into the next section's text.

    Tables inside a section become separate ``kind="table"`` Documents that carry the
    section's headings, so the splitter never cuts a row in half.
    """

    def __init__(self, source: str, *, h1_is_title: bool = True) -> None:
        self.source = source
        self.title: str | None = None
        self.h1_is_title = h1_is_title
        self._path: list[tuple[int, str]] = []
        self._lines: list[str] = []
        self._has_body = False
        self._documents: list[Document] = []

    @property
    def headings(self) -> tuple[str, ...]:
        return tuple(text for _, text in self._path)

    def heading(self, level: int, text: str) -> None:
        """Start a new section under ``text`` at ``level`` (1 = top)."""
        text = clean_cell(text)
        if not text:
            return
        self._flush()
        while self._path and self._path[-1][0] >= level:
            self._path.pop()
        self._path.append((level, text))
        if self.title is None and level == 1 and self.h1_is_title:
            self.title = text
        self._lines.append(text)

    def line(self, text: str, *, body: bool = True) -> None:
        """Add one line (blank lines separate paragraphs); ``body=False`` for title lines."""
        self._lines.append(text.rstrip())
        self._has_body = self._has_body or (body and bool(text.strip()))

    def table(self, rows: Iterable[Sequence[object]]) -> None:
        """Add a table; it becomes its own Document with the current headings."""
        lines = table_lines(rows)
        if not lines:
            return
        self._flush()
        self._documents.append(
            Document(
                text="\n".join(lines),
                source=self.source,
                headings=self.headings,
                title=self.title,
                kind="table",
            )
        )

    def documents(self, default_title: str) -> list[Document]:
        """Finish and return all Documents; ``default_title`` is used if no title was set."""
        self._flush(carry=False)
        title = self.title or default_title
        return [replace(doc, title=title) for doc in self._documents]

    def _flush(self, *, carry: bool = True) -> None:
        if carry and not self._has_body:
            return
        text = "\n".join(self._lines).strip("\n")
        self._lines = []
        self._has_body = False
        if text.strip():
            self._documents.append(
                Document(text=text, source=self.source, headings=self.headings, title=self.title)
            )
