"""Marked-up text: Markdown, HTML, e-mail (.eml) and EPUB, split into heading sections."""

from __future__ import annotations

import re
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path, PurePath, PurePosixPath
from typing import TYPE_CHECKING, Any
from xml.etree import ElementTree

from kbchat.errors import BadInput
from kbchat.ingest.structure import SectionBuilder
from kbchat.ingest.text import check_text, check_text_bytes, decode_bytes, read_text
from kbchat.text import WIDE
from kbchat.types import Document

if TYPE_CHECKING:
    from kbchat.ingest.ocr import OcrReader

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
# CommonMark wants a space after the #s; Chinese writers often omit it before Han text.
_ATX = re.compile(rf"^ {{0,3}}(#{{1,6}})(?:[ \t]+|(?=[{WIDE}]))(.*?)(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_NOT_PARAGRAPH = re.compile(r"^\s*([-*+>|]|\d+[.)]\s|#)")
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)|!\[([^\]]*)\]\[[^\]]*\]")
_HTML_IMG = re.compile(r"<img\b[^>]*>", re.IGNORECASE)
_ALT = re.compile(r"\balt\s*=\s*[\"']([^\"']*)[\"']", re.IGNORECASE)
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$")
_FRONT_TITLE = re.compile(r"^title:\s*[\"']?(.*?)[\"']?\s*$", re.IGNORECASE)

_DROP_TAGS = ("script", "style", "nav", "noscript", "template", "svg", "head", "iframe")
_BLOCK_TAGS = frozenset(
    ("address", "article", "aside", "blockquote", "caption", "dd", "details", "div", "dl", "dt",
     "fieldset", "figcaption", "figure", "footer", "form", "header", "hr", "li", "main", "ol",
     "p", "pre", "section", "summary", "ul")
)  # fmt: skip
_HEADING_TAGS = {f"h{level}": level for level in range(1, 7)}


def load_markdown(path: Path, source: str, *, ocr: OcrReader | None = None) -> list[Document]:
    """One Document per heading section; code blocks kept, image URLs replaced by alt text."""
    return markdown_documents(read_text(path, source), source)


def markdown_documents(text: str, source: str) -> list[Document]:
    """Split Markdown text into heading sections (ATX and setext headings, fenced code)."""
    lines = text.split("\n")
    lines, front_title = _strip_front_matter(lines)
    builder = SectionBuilder(source)
    fence: str | None = None
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        marker = _FENCE.match(line)
        if fence is not None:
            builder.line(line)
            if marker and marker.group(1)[0] == fence[0] and len(marker.group(1)) >= len(fence):
                fence = None
            continue
        if marker:
            fence = marker.group(1)
            builder.line(line)
            continue
        heading = _ATX.match(line)
        if heading:
            builder.heading(len(heading.group(1)), _inline(heading.group(2)))
            continue
        if _is_table_start(lines, index - 1):
            index = _read_table(lines, index - 1, builder)
            continue
        if index < len(lines) and _is_setext_title(line, lines[index]):
            builder.heading(1 if lines[index].strip()[0] == "=" else 2, _inline(line))
            index += 1
            continue
        builder.line(_inline(line))
    return builder.documents(front_title or PurePath(source).stem)


def _strip_front_matter(lines: list[str]) -> tuple[list[str], str | None]:
    if not lines or lines[0].strip() != "---":
        return lines, None
    for end in range(1, min(len(lines), 100)):
        if lines[end].strip() in ("---", "..."):
            title = None
            for meta in lines[1:end]:
                found = _FRONT_TITLE.match(meta.strip())
                title = title or (found.group(1) if found else None)
            return lines[end + 1 :], title or None
    return lines, None


def _is_setext_title(line: str, underline: str) -> bool:
    return bool(line.strip() and _SETEXT.match(underline) and not _NOT_PARAGRAPH.match(line))


def _is_table_start(lines: list[str], index: int) -> bool:
    return (
        "|" in lines[index]
        and index + 1 < len(lines)
        and "-" in lines[index + 1]
        and bool(_TABLE_RULE.match(lines[index + 1]))
    )


def _read_table(lines: list[str], index: int, builder: SectionBuilder) -> int:
    rows = [_table_cells(lines[index])]
    index += 2
    while index < len(lines) and "|" in lines[index] and lines[index].strip():
        rows.append(_table_cells(lines[index]))
        index += 1
    builder.table(rows)
    return index


def _table_cells(line: str) -> list[str]:
    stripped = line.strip()
    stripped = stripped.removeprefix("|").removesuffix("|")
    return [_inline(cell.strip()) for cell in re.split(r"(?<!\\)\|", stripped)]


def _inline(text: str) -> str:
    """Replace Markdown and HTML images by their alt text."""
    text = _IMAGE.sub(lambda m: m.group(1) or m.group(2) or "", text)
    return _HTML_IMG.sub(_html_alt, text)


def _html_alt(match: re.Match[str]) -> str:
    alt = _ALT.search(match.group(0))
    return alt.group(1) if alt else ""


def load_html(path: Path, source: str, *, ocr: OcrReader | None = None) -> list[Document]:
    """One Document per heading section; title from ``<title>``; scripts, styles, nav dropped."""
    return html_documents(read_text(path, source), source, PurePath(source).stem)


def html_documents(html: str, source: str, default_title: str) -> list[Document]:
    """Split an HTML string into heading sections (tables become table Documents)."""
    builder = SectionBuilder(source)
    title = add_html(html, builder)
    if title:
        builder.title = title
    return builder.documents(default_title)


def add_html(html: str, builder: SectionBuilder) -> str | None:
    """Walk an HTML document into ``builder``; returns its ``<title>`` text, if any."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    title_tag = soup.find("title")
    title = title_tag.get_text(" ", strip=True) if title_tag else None
    for tag in soup.find_all(_DROP_TAGS):
        tag.decompose()
    walker = _HtmlWalker(builder)
    try:
        walker.walk(soup.body or soup)
    except RecursionError:
        raise BadInput(f"{builder.source}: HTML nested too deeply to read") from None
    walker.end_line()
    return title or None


class _HtmlWalker:
    """Depth-first walk that turns block elements into lines and headings into sections."""

    def __init__(self, builder: SectionBuilder) -> None:
        self.builder = builder
        self.parts: list[str] = []

    def end_line(self) -> None:
        line = re.sub(r"[ \t\u00a0]+", " ", "".join(self.parts)).strip()
        self.parts = []
        if line:
            self.builder.line(line)

    def walk(self, node: Any) -> None:
        from bs4.element import Comment, NavigableString, Tag

        for child in node.children:
            if isinstance(child, Comment):
                continue
            if isinstance(child, NavigableString):
                if type(child) is NavigableString:
                    self.parts.append(str(child).replace("\n", " "))
            elif isinstance(child, Tag):
                self._tag(child)

    def _tag(self, tag: Any) -> None:
        name = tag.name
        if name in _HEADING_TAGS:
            self.end_line()
            self.builder.heading(_HEADING_TAGS[name], tag.get_text(" ", strip=True))
        elif name == "table":
            self.end_line()
            self.builder.table(_html_rows(tag))
        elif name == "pre":
            self.end_line()
            for line in tag.get_text().strip("\n").split("\n"):
                self.builder.line(line)
        elif name == "br":
            self.end_line()
        elif name == "img":
            self.parts.append(str(tag.get("alt") or ""))
        elif name in _BLOCK_TAGS:
            self.end_line()
            self.walk(tag)
            self.end_line()
        else:
            self.walk(tag)


def _html_rows(table: Any) -> Iterator[list[str]]:
    """Rows on the table's grid: a cell's text fills every cell its rowspan/colspan covers."""
    rows = [row for row in table.find_all("tr") if row.find_parent("table") is table]
    pending: dict[int, tuple[str, int]] = {}  # column -> (text, rows it still covers)
    for tr in rows:
        row: list[str] = []
        for cell in tr.find_all(("th", "td"), recursive=False):
            while len(row) in pending:
                row.append(_take(pending, len(row)))
            text = cell.get_text(" ", strip=True)
            across = max(1, _span(cell.get("colspan"), _MAX_COLSPAN))
            down = _span(cell.get("rowspan"), len(rows)) or len(rows)  # 0: to the table's end
            for column in range(len(row), len(row) + across):
                if down > 1:
                    pending[column] = (text, down - 1)
                row.append(text)
        while pending and len(row) <= max(pending):
            row.append(_take(pending, len(row)) if len(row) in pending else "")
        yield row


_MAX_COLSPAN = 1000
"""The HTML standard's limit on colspan."""


def _take(pending: dict[int, tuple[str, int]], column: int) -> str:
    text, left = pending.pop(column)
    if left > 1:
        pending[column] = (text, left - 1)
    return text


def _span(value: Any, limit: int) -> int:
    """A rowspan/colspan attribute as a count in ``[0, limit]`` (1 when missing or invalid)."""
    if value is None:
        return 1
    try:
        count = int(str(value).strip())
    except ValueError:
        return 1
    return min(max(count, 0), limit)


def load_eml(path: Path, source: str, *, ocr: OcrReader | None = None) -> list[Document]:
    """An e-mail as one Document: headers, then the plain (or HTML) body; attachments named.

    Raises:
        BadInput: the file, or its body once decoded, is binary rather than text.
    """
    from email import message_from_bytes, policy

    data = path.read_bytes()
    check_text_bytes(data, source)
    message: Any = message_from_bytes(data, policy=policy.default)
    subject = str(message.get("subject") or "").strip()
    lines = [
        f"{label}: {message.get(key)}"
        for key, label in (("from", "From"), ("to", "To"), ("date", "Date"), ("subject", "Subject"))
        if message.get(key)
    ]
    body = message.get_body(preferencelist=("plain", "html"))
    if body is not None:
        content = _part_text(body, source)
        check_text(content, f"{source} (message body)")
        if body.get_content_subtype() == "html":
            builder = SectionBuilder(source)
            add_html(content, builder)
            content = "\n\n".join(doc.text for doc in builder.documents(""))
        lines += ["", content]
    attachments = [part.get_filename() for part in message.iter_attachments()]
    if any(attachments):
        lines += ["", "Attachments: " + ", ".join(name for name in attachments if name)]
    return [Document(text="\n".join(lines), source=source, title=subject or PurePath(source).stem)]


def _part_text(part: Any, source: str) -> str:
    try:
        return str(part.get_content())
    except (LookupError, UnicodeError):
        return decode_bytes(part.get_payload(decode=True) or b"", source)


_OPF = "{http://www.idpf.org/2007/opf}"
_DC = "{http://purl.org/dc/elements/1.1/}"
_CONTAINER = "{urn:oasis:names:tc:opendocument:xmlns:container}"


def load_epub(path: Path, source: str, *, ocr: OcrReader | None = None) -> list[Document]:
    """An EPUB's chapters in reading (spine) order, split into heading sections."""
    try:
        with zipfile.ZipFile(path) as archive:
            opf_path = _rootfile(archive)
            opf = ElementTree.fromstring(archive.read(opf_path))
            title_node = opf.find(f"{_OPF}metadata/{_DC}title")
            builder = SectionBuilder(source)
            for member in _spine(opf, PurePosixPath(opf_path).parent):
                html = decode_bytes(archive.read(member), f"{source}:{member}")
                add_html(html, builder)
    except (zipfile.BadZipFile, zlib.error, OSError, KeyError, ElementTree.ParseError) as exc:
        raise BadInput(f"{source}: corrupt or truncated epub: {exc}") from None
    if title_node is not None and title_node.text:
        builder.title = title_node.text.strip()
    return builder.documents(PurePath(source).stem)


def _rootfile(archive: zipfile.ZipFile) -> str:
    container = ElementTree.fromstring(archive.read("META-INF/container.xml"))
    rootfile = container.find(f"{_CONTAINER}rootfiles/{_CONTAINER}rootfile")
    if rootfile is None or not rootfile.get("full-path"):
        raise KeyError("META-INF/container.xml names no rootfile")
    return str(rootfile.get("full-path"))


def _spine(opf: ElementTree.Element, base: PurePosixPath) -> Iterator[str]:
    from urllib.parse import unquote

    hrefs = {
        item.get("id"): item.get("href")
        for item in opf.iter(f"{_OPF}item")
        if "html" in (item.get("media-type") or "")
    }
    for itemref in opf.iter(f"{_OPF}itemref"):
        href = hrefs.get(itemref.get("idref"))
        if href:
            yield str(base / unquote(href)).removeprefix("./")
