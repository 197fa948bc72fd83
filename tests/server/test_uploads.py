"""Upload safety: names that cannot escape the folder, content that must match its extension."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kbchat.errors import BadInput
from kbchat.server.errors import PayloadTooLarge
from kbchat.server.uploads import MAX_NAME_BYTES, content_problem, safe_name, save_upload


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("report.pdf", "report.pdf"),
        ("../../etc/passwd.txt", "passwd.txt"),
        ("C:\\Users\\me\\notes.md", "notes.md"),
        (".bashrc.txt", "bashrc.txt"),
        ("..", None),
        ("a<b>c:d|e?.txt", "a_b_c_d_e_.txt"),
        ("tab\there.txt", "tab_here.txt"),
        ("CON.txt", "_CON.txt"),
        ("报告 2024.docx", "报告 2024.docx"),
        ("trailing. ", "trailing"),
        ("/", None),
    ],
)
def test_safe_names(raw: str, expected: str | None) -> None:
    if expected is None:
        with pytest.raises(BadInput):
            safe_name(raw)
    else:
        assert safe_name(raw) == expected


def test_long_names_keep_their_extension() -> None:
    name = safe_name("长" * 300 + ".pdf")
    assert name.endswith(".pdf") and len(name.encode()) <= MAX_NAME_BYTES


@given(st.text(min_size=1, max_size=400))
def test_any_name_stays_a_plain_file_name(raw: str) -> None:
    try:
        name = safe_name(raw)
    except BadInput:
        return
    assert name and "/" not in name and "\\" not in name and "\x00" not in name
    assert not name.startswith((".", " ")) and name not in (".", "..")
    assert len(name.encode()) <= MAX_NAME_BYTES
    assert Path("/uploads", name).resolve().parent == Path("/uploads")


ELF = b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 56
PE = b"MZ\x90\x00\x03\x00\x00\x00" + b"\x00" * 56


@pytest.mark.parametrize(
    ("name", "head", "problem"),
    [
        ("a.pdf", b"%PDF-1.7\n...", None),
        ("a.pdf", b"\n\n  junk before %PDF-1.4", None),
        ("a.pdf", PE, "Windows executable"),
        ("a.pdf", b"<html>not a pdf</html>", "does not look like a pdf"),
        ("a.docx", b"PK\x03\x04rest", None),
        ("a.docx", b"%PDF-1.4", "does not look like a docx"),
        ("a.png", b"\x89PNG\r\n\x1a\n....", None),
        ("a.jpg", b"GIF89a", "does not look like a jpg"),
        ("a.webp", b"RIFF\x00\x00\x00\x00WEBPVP8 ", None),
        ("a.webp", b"RIFF\x00\x00\x00\x00WAVEfmt ", "webp"),
        ("a.txt", b"plain text", None),
        ("a.txt", "中文".encode("utf-16"), None),
        ("a.txt", ELF, "Linux executable"),
        ("a.md", b"MZ is a nice airport code", None),
        ("a.csv", b"a,b\x00,c", "binary content"),
    ],
)
def test_content_must_match_the_extension(name: str, head: bytes, problem: str | None) -> None:
    found = content_problem(name, head)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found and name in found


def test_save_is_atomic_and_bounded(tmp_path: Path) -> None:
    target = save_upload(io.BytesIO(b"hello"), tmp_path, "a.txt", max_bytes=10)
    assert target.read_bytes() == b"hello"
    with pytest.raises(PayloadTooLarge):
        save_upload(io.BytesIO(b"x" * 11), tmp_path, "a.txt", max_bytes=10)
    assert target.read_bytes() == b"hello"  # the old version is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]  # no partial files left
    with pytest.raises(BadInput):
        save_upload(io.BytesIO(b"x"), tmp_path, "../b.txt", max_bytes=10)
