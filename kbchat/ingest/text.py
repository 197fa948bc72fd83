"""Plain-text formats (txt, csv/tsv, json/jsonl) and the encoding detection they share.

Decoding order: byte-order mark; BOM-less UTF-16/32 recognised by their NUL pattern;
strict UTF-8; simplified Chinese that fits GB2312; then charset-normalizer, with any GBK
family answer widened to GB18030.

A file is called binary only for bytes no text encoding explains: NUL bytes outside a
UTF-16/32 pattern, byte sequences invalid in every encoding tried, and control characters
(other than tab, newlines, form feed, vertical tab and escape) in more than 1% of the text.
Rare but valid characters (the private-use area of icon fonts, emoji, unassigned code
points) are text. A refusal names the offset and value of the first byte that made the call.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
import unicodedata
from pathlib import Path, PurePath
from typing import TYPE_CHECKING

from kbchat.errors import BadInput
from kbchat.ingest.structure import clean_cell, table_lines
from kbchat.text import is_han_or_punctuation
from kbchat.types import Document

if TYPE_CHECKING:
    from kbchat.ingest.ocr import OcrReader

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_GB_FAMILY = {"gbk", "gb2312", "gb18030", "cp936", "hz", "hz_gb_2312", "euc_cn"}
# Answers charset-normalizer gives for short Chinese text that really is GB or Big5.
_OTHER_CJK = {
    "cp949", "euc_kr", "johab", "iso2022_kr", "shift_jis", "shift_jis_2004", "shift_jisx0213",
    "cp932", "euc_jp", "euc_jis_2004", "euc_jisx0213", "iso2022_jp", "utf_16_be", "utf_16_le",
}  # fmt: skip
# Control characters no text uses (tab, newlines, \f, \v and ESC are allowed), and U+FFFD,
# which a lenient decode puts where bytes were invalid. NULs are judged on the bytes.
_NOT_TEXT = re.compile("[\x01-\x08\x0e-\x1a\x1c-\x1f\x7f-\x9f\ufffd]")
_NOT_TEXT_BYTES = re.compile(b"[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f]")
_MAX_BAD_FRACTION = 0.01


def decode_bytes(data: bytes, name: str) -> str:
    """Decode a text file's bytes, detecting the encoding; newlines become ``\\n``.

    Args:
        data: the whole file.
        name: the file's label, used in error messages.

    Returns:
        The text, without BOM, with ``\\r\\n`` and ``\\r`` normalised to ``\\n``.

    Raises:
        BadInput: the bytes are binary or in no encoding that can be recognised; the
            message gives the offset and value of the first byte that decided it.
    """
    text, encoding, prefix = _decode(data, name)
    check_text(
        text, name, encoding=encoding, prefix=prefix, written=_written_replacements(data, encoding)
    )
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "\x00" in text:
        text = text.replace("\x00", "")
    return text


def check_text(
    text: str, name: str, *, encoding: str = "utf-8", prefix: int = 0, written: int = 0
) -> None:
    """Refuse decoded text with more than 1% control characters or undecodable bytes.

    Args:
        text: the decoded text.
        name: the file's label, used in the message.
        encoding: what ``text`` was decoded from, to give byte offsets.
        prefix: bytes before ``text`` in the file (a byte-order mark).
        written: how many U+FFFD the file itself holds, encoded: text, not bytes a lenient
            decode replaced (an earlier lossy conversion left "��宣言」倡議…" in a
            78-character news snippet, and 2 of 78 is over 1%).

    Raises:
        BadInput: the text looks binary; names the first offending character's byte offset.
    """
    bad = [match.start() for match in _NOT_TEXT.finditer(text)]
    if len(bad) - written <= _MAX_BAD_FRACTION * len(text):
        return
    char = text[bad[0]]
    offset = prefix + len(text[: bad[0]].encode(encoding, "replace"))
    what = "an undecodable byte sequence" if char == "\ufffd" else f"control {ord(char):#04x}"
    raise BadInput(
        f"{name}: looks like a binary file, not text: {len(bad)} of {len(text)} characters "
        f"are control characters or undecodable bytes; the first, {what}, at byte {offset}"
    )


def _written_replacements(data: bytes, encoding: str) -> int:
    """How many U+FFFD ``data`` holds encoded in ``encoding`` (0 if it cannot encode one)."""
    try:
        return data.count("\ufffd".encode(encoding))
    except (UnicodeEncodeError, LookupError):
        return 0


def check_text_bytes(data: bytes, name: str) -> None:
    """Refuse bytes of an ASCII-based text format (e-mail) that hold NULs or many controls.

    Raises:
        BadInput: a NUL byte, or control bytes in more than 1% of ``data``; names the first.
    """
    nul = data.find(0)
    if nul >= 0:
        raise BadInput(
            f"{name}: looks like a binary file, not text: {data.count(0)} NUL bytes, the "
            f"first at byte {nul}"
        )
    bad = _NOT_TEXT_BYTES.findall(data)
    if len(bad) > _MAX_BAD_FRACTION * len(data):
        first = _NOT_TEXT_BYTES.search(data)
        assert first is not None
        raise BadInput(
            f"{name}: looks like a binary file, not text: {len(bad)} of {len(data)} bytes are "
            f"control bytes, the first ({first.group()[0]:#04x}) at byte {first.start()}"
        )


def _decode(data: bytes, name: str) -> tuple[str, str, int]:
    """``(text, encoding, bytes of BOM skipped)``."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data[len(bom) :].decode(encoding), encoding, len(bom)
            except UnicodeDecodeError as exc:
                raise BadInput(
                    f"{name}: has a {encoding} byte-order mark but bytes "
                    f"{_shown(data, len(bom) + exc.start)} at byte {len(bom) + exc.start} "
                    f"are not {encoding}"
                ) from None
    if b"\x00" in data:
        return _decode_with_nuls(data, name)
    try:
        return data.decode("utf-8"), "utf-8", 0
    except UnicodeDecodeError as exc:
        invalid_at = exc.start
    if _is_plausible_chinese(data, "gb2312"):
        return data.decode("gb18030"), "gb18030", 0
    return _decode_detected(data, name, invalid_at)


def _shown(data: bytes, offset: int) -> str:
    return data[offset : offset + 4].hex(" ")


def _decode_with_nuls(data: bytes, name: str) -> tuple[str, str, int]:
    """UTF-16/32 without BOM show NULs in a fixed byte lane; anything else is binary."""
    size = len(data) - len(data) % 2
    even, odd = data[0:size:2].count(0), data[1:size:2].count(0)
    half = max(size // 2, 1)
    if len(data) % 4 == 0 and data[2::4].count(0) + data[3::4].count(0) > 0.9 * len(data) / 2:
        candidates = ["utf-32-le"]
    elif len(data) % 4 == 0 and data[0::4].count(0) + data[1::4].count(0) > 0.9 * len(data) / 2:
        candidates = ["utf-32-be"]
    elif odd > 0.2 * half and even < 0.02 * half:
        candidates = ["utf-16-le"]
    elif even > 0.2 * half and odd < 0.02 * half:
        candidates = ["utf-16-be"]
    else:
        candidates = ["utf-8"] if data.count(0) <= max(4, len(data) // 1000) else []
    for encoding in candidates:
        try:
            return data.decode(encoding), encoding, 0
        except UnicodeDecodeError:
            continue
    raise BadInput(
        f"{name}: looks like a binary file, not text: {data.count(0)} NUL bytes, the first at "
        f"byte {data.index(0)}, in no UTF-16/32 pattern"
    )


def _decode_detected(data: bytes, name: str, invalid_at: int) -> tuple[str, str, int]:
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is None and _is_mostly_simplified_chinese(data):
        return data.decode("gb18030"), "gb18030", 0
    if best is None:
        raise BadInput(
            f"{name}: looks like a binary file, not text: no text encoding explains its bytes "
            f"(the first not valid UTF-8: {_shown(data, invalid_at)} at byte {invalid_at})"
        )
    encoding = best.encoding.lower()
    if encoding in _GB_FAMILY:
        return data.decode("gb18030", errors="replace"), "gb18030", 0
    if encoding in _OTHER_CJK:
        for chinese in ("big5", "gb18030"):
            if _is_plausible_chinese(data, chinese):
                return data.decode(chinese), chinese, 0
    return str(best), encoding, 0


def _is_plausible_chinese(data: bytes, encoding: str) -> bool:
    """True if ``data`` decodes strictly and every non-ASCII character is Han or CJK punctuation."""
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError:
        return False
    wide = [ch for ch in text if ord(ch) > 0x7F]
    return bool(wide) and all(_is_chinese_char(ch) for ch in wide)


def _is_mostly_simplified_chinese(data: bytes) -> bool:
    """GB18030 text with characters GB2312 lacks (icon-font glyphs, emoji) mixed in.

    At least 90% of the other non-ASCII characters must be GB2312 characters; Big5 or
    random bytes read as GB18030 give mostly characters outside GB2312.
    """
    try:
        text = data.decode("gb18030")
    except UnicodeDecodeError:
        return False
    wide = [ch for ch in text if ord(ch) > 0x7F and unicodedata.category(ch) not in ("Co", "So")]
    in_gb2312 = sum(1 for ch in wide if _encodes(ch, "gb2312"))
    return len(wide) >= 4 and in_gb2312 >= 0.9 * len(wide)


def _encodes(ch: str, encoding: str) -> bool:
    try:
        ch.encode(encoding)
    except UnicodeEncodeError:
        return False
    return True


def _is_chinese_char(ch: str) -> bool:
    return is_han_or_punctuation(ch) or ch in "“”‘’…—–·•、"


def read_text(path: Path, name: str) -> str:
    """Read and decode a whole text file."""
    return decode_bytes(path.read_bytes(), name)


def load_txt(path: Path, source: str, *, ocr: OcrReader | None = None) -> list[Document]:
    """A plain text file as one Document."""
    text = read_text(path, source)
    return [Document(text=text, source=source, title=PurePath(source).stem)]


def load_csv(path: Path, source: str, *, ocr: OcrReader | None = None) -> list[Document]:
    """A csv/tsv file as one table Document, one ``header: value | ...`` row per line."""
    text = read_text(path, source)
    delimiter = "\t" if path.suffix.lower() == ".tsv" else _sniff_delimiter(text)
    try:
        rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    except csv.Error as exc:
        raise BadInput(f"{source}: malformed csv: {exc}") from None
    lines = table_lines(rows)
    return [
        Document(text="\n".join(lines), source=source, title=PurePath(source).stem, kind="table")
    ]


def _sniff_delimiter(text: str) -> str:
    sample = "\n".join(text.splitlines()[:50])
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def load_json(path: Path, source: str, *, ocr: OcrReader | None = None) -> list[Document]:
    """A json file as its pretty-printed text."""
    text = read_text(path, source)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInput(f"{source}: invalid JSON: {exc}") from None
    pretty = json.dumps(value, ensure_ascii=False, indent=2)
    if value in (None, "", [], {}):
        pretty = ""
    return [Document(text=pretty, source=source, title=PurePath(source).stem)]


def load_jsonl(path: Path, source: str, *, ocr: OcrReader | None = None) -> list[Document]:
    """A jsonl file as one table Document, one ``key: value | ...`` record per line."""
    lines: list[str] = []
    for number, raw in enumerate(read_text(path, source).split("\n"), 1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise BadInput(f"{source}: line {number} is not valid JSON: {exc}") from None
        lines.append(_record_line(record))
    return [
        Document(
            text="\n".join(line for line in lines if line),
            source=source,
            title=PurePath(source).stem,
            kind="table",
        )
    ]


def _record_line(record: object) -> str:
    if not isinstance(record, dict):
        return clean_cell(_scalar(record))
    pairs = [(clean_cell(key), clean_cell(_scalar(value))) for key, value in record.items()]
    return " | ".join(f"{key}: {value}" for key, value in pairs if value)


def _scalar(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)
