"""Upload safety: names that cannot escape the folder, content that must match its extension."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kbchat.errors import BadInput, Conflict
from kbchat.server.errors import PayloadTooLarge
from kbchat.server.uploads import (
    MAX_DEPTH,
    MAX_NAME_BYTES,
    content_problem,
    place_upload,
    safe_path,
    stage_upload,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("report.pdf", "report.pdf"),
        ("北京分公司/考勤 制度.txt", "北京分公司/考勤 制度.txt"),
        ("docs\\2024\\q1.md", "docs/2024/q1.md"),
        ("a//./b.txt", "a/b.txt"),
        (".git/config.txt", "git/config.txt"),
        ("/home/me/notes.md", "notes.md"),
        ("C:\\Users\\me\\notes.md", "notes.md"),
        ("../../etc/passwd.txt", None),
        ("a/../../b.txt", None),
        ("..\\b.txt", None),
        ("a/" * 20 + "deep.txt", None),
        (".bashrc.txt", "bashrc.txt"),
        ("..", None),
        ("a<b>c:d|e?.txt", "a_b_c_d_e_.txt"),
        ("tab\there.txt", "tab_here.txt"),
        ("CON.txt", "_CON.txt"),
        ("aux/CON.txt", "_aux/_CON.txt"),
        ("报告 2024.docx", "报告 2024.docx"),
        ("trailing. ", "trailing"),
        ("/", None),
        ("a/ . /b.txt", None),
    ],
)
def test_safe_paths(raw: str, expected: str | None) -> None:
    if expected is None:
        with pytest.raises(BadInput):
            safe_path(raw)
    else:
        assert safe_path(raw) == expected


def test_long_names_keep_their_extension() -> None:
    name = safe_path("长" * 300 + ".pdf")
    assert name.endswith(".pdf") and len(name.encode()) <= MAX_NAME_BYTES


@given(st.text(min_size=1, max_size=400))
def test_any_name_stays_inside_the_uploads_folder(raw: str) -> None:
    try:
        path = safe_path(raw)
    except BadInput:
        return
    parts = path.split("/")
    assert 1 <= len(parts) <= MAX_DEPTH and "\\" not in path and "\x00" not in path
    for part in parts:
        assert part and not part.startswith((".", " ")) and len(part.encode()) <= MAX_NAME_BYTES
    assert Path("/uploads", path).resolve().is_relative_to(Path("/uploads"))
    assert Path("/uploads", path).resolve() != Path("/uploads")


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


def test_staging_is_bounded_and_leaves_nothing_behind(tmp_path: Path) -> None:
    staged = stage_upload(io.BytesIO(b"hello"), tmp_path, "a/b.txt", max_bytes=10)
    assert staged.size == 5 and staged.sha256 == hashlib.sha256(b"hello").hexdigest()
    assert place_upload(staged, replace=False)
    target = tmp_path / "a" / "b.txt"
    assert target.read_bytes() == b"hello"
    with pytest.raises(PayloadTooLarge):
        stage_upload(io.BytesIO(b"x" * 11), tmp_path, "a/b.txt", max_bytes=10)
    assert target.read_bytes() == b"hello"  # the old version is intact
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "b.txt"]  # no partial files
    with pytest.raises(BadInput):
        stage_upload(io.BytesIO(b"x"), tmp_path, "../b.txt", max_bytes=10)


def test_placing_never_replaces_different_bytes_unless_asked(tmp_path: Path) -> None:
    first = stage_upload(io.BytesIO(b"first"), tmp_path, "same.txt", max_bytes=100)
    racing = stage_upload(io.BytesIO(b"second"), tmp_path, "same.txt", max_bytes=100)
    twin = stage_upload(io.BytesIO(b"first"), tmp_path, "same.txt", max_bytes=100)
    assert place_upload(first, replace=False)
    assert not place_upload(racing, replace=False)  # lost the race: refused, not replaced
    assert place_upload(twin, replace=False)  # the same bytes are already there
    assert (tmp_path / "same.txt").read_bytes() == b"first"
    again = stage_upload(io.BytesIO(b"second"), tmp_path, "same.txt", max_bytes=100)
    assert place_upload(again, replace=True)
    assert (tmp_path / "same.txt").read_bytes() == b"second"
    assert [p.name for p in tmp_path.iterdir()] == ["same.txt"]


def test_a_file_in_the_way_of_a_folder_is_a_clear_refusal(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a file")
    staged = stage_upload(io.BytesIO(b"x"), tmp_path, "a.txt/b.txt", max_bytes=10)
    with pytest.raises(Conflict, match="a.txt/b.txt: a file or folder of the same name"):
        place_upload(staged, replace=True)
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]
