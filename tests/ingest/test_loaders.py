"""load_file: dispatch by extension, input checks, limits and the tidy-up of every result."""

from __future__ import annotations

import zipfile
from pathlib import Path

import docx
import pytest

from kbchat.errors import BadInput
from kbchat.ingest import LoadLimits, is_supported, load_file, loaders, supported_extensions


def test_supported_extensions_cover_the_formats() -> None:
    extensions = supported_extensions()
    expected = {".txt", ".md", ".markdown", ".csv", ".tsv", ".json", ".jsonl", ".html", ".htm",
                ".pdf", ".docx", ".xlsx", ".xlsm", ".pptx", ".png", ".jpg", ".jpeg", ".bmp",
                ".webp", ".eml", ".epub"}  # fmt: skip
    assert expected <= extensions
    assert all(ext.startswith(".") and ext == ext.lower() for ext in extensions)
    assert ".doc" not in extensions and ".exe" not in extensions


def test_is_supported_ignores_case_and_does_not_open_the_file() -> None:
    assert is_supported(Path("/nowhere/REPORT.PDF"))
    assert is_supported(Path("notes.Md"))
    assert not is_supported(Path("archive.zip"))
    assert not is_supported(Path("README"))


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError, match="max_file_bytes must be > 0, got 0"):
        LoadLimits(max_file_bytes=0)
    with pytest.raises(ValueError, match="max_unpacked_bytes"):
        LoadLimits(max_unpacked_bytes=-1)


def test_source_label_defaults_to_file_name(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    assert load_file(path)[0].source == "notes.txt"
    [doc] = load_file(path, source="team/notes.txt")
    assert (doc.source, doc.title) == ("team/notes.txt", "notes")


def test_extension_taken_from_source_when_path_has_none(tmp_path: Path) -> None:
    upload = tmp_path / "upload-1234"
    upload.write_text("# Title\nbody")
    [doc] = load_file(upload, source="guide.md")
    assert doc.headings == ("Title",)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match=r"gone\.txt: no such file"):
        load_file(tmp_path / "gone.txt")


def test_directory_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "folder.md"
    folder.mkdir()
    with pytest.raises(BadInput, match=r"folder\.md: is a directory"):
        load_file(folder)


def test_permission_denied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "secret.txt"
    path.write_text("top secret")
    real_open = Path.open

    def deny(self: Path, *args: object, **kwargs: object) -> object:
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(Path, "open", deny)
    with pytest.raises(BadInput, match=r"secret\.txt: permission denied"):
        load_file(path)


def test_file_over_size_limit(tmp_path: Path) -> None:
    path = tmp_path / "big.txt"
    path.write_text("x" * 2048)
    with pytest.raises(BadInput, match=r"big\.txt: file is 0\.0 MB, over the limit"):
        load_file(path, limits=LoadLimits(max_file_bytes=1024))
    assert load_file(path, limits=LoadLimits(max_file_bytes=2048))[0].text == "x" * 2048


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.md"
    path.touch()
    with pytest.raises(BadInput, match=r"empty\.md: file is empty \(0 bytes\)"):
        load_file(path)


def test_whitespace_only_file_has_no_text(tmp_path: Path) -> None:
    path = tmp_path / "blank.txt"
    path.write_text(" \n\t\n\u3000\n")
    with pytest.raises(BadInput, match=r"blank\.txt: no text found"):
        load_file(path)


def test_unsupported_extension(tmp_path: Path) -> None:
    path = tmp_path / "tool.exe"
    path.write_bytes(b"MZ\x90\x00")
    with pytest.raises(BadInput, match=r"tool\.exe: unsupported file type \(\.exe\); supported: "):
        load_file(path)


def test_text_is_tidied(tmp_path: Path) -> None:
    path = tmp_path / "messy.txt"
    path.write_text("\n\n  indented first line   \nsecond\t\n\n\n\n\nthird  \n\n")
    assert load_file(path)[0].text == "  indented first line\nsecond\n\nthird"


def test_empty_sections_are_dropped(tmp_path: Path) -> None:
    path = tmp_path / "sections.md"
    path.write_text("# A\n\n   \n# B\ntext under B\n")
    docs = load_file(path)
    assert all(doc.text.strip() for doc in docs)
    assert docs[-1].text.endswith("text under B")


def zip_with_member(path: Path, size: int) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("word/document.xml", b"\0" * size)
    return path


@pytest.mark.parametrize("kind", ["docx", "xlsx", "pptx", "epub"])
def test_zip_bomb_is_refused_before_parsing(
    tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = zip_with_member(tmp_path / f"bomb.{kind}", 3 * 2**20)
    assert path.stat().st_size < 20_000

    def parser(*args: object, **kwargs: object) -> None:
        pytest.fail("the parser ran before the zip check")

    monkeypatch.setattr(loaders, "_loader_for", lambda *_: parser)
    with pytest.raises(BadInput, match=rf"bomb\.{kind}: unpacks to 3\.0 MB.*zip bomb"):
        load_file(path, limits=LoadLimits(max_unpacked_bytes=2**20))


def test_unpacked_size_counts_every_member(tmp_path: Path) -> None:
    path = tmp_path / "many.docx"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for index in range(4):
            archive.writestr(f"part{index}.xml", b" " * 300_000)
    with pytest.raises(BadInput, match=r"unpacks to 1\.1 MB"):
        load_file(path, limits=LoadLimits(max_unpacked_bytes=2**20))


def test_real_docx_passes_the_zip_check(tmp_path: Path) -> None:
    document = docx.Document()
    document.add_paragraph("Small and honest.")
    path = tmp_path / "ok.docx"
    document.save(str(path))
    assert load_file(path, limits=LoadLimits(max_unpacked_bytes=2**20))[0].text == (
        "Small and honest."
    )


def test_truncated_zip_is_corrupt(tmp_path: Path) -> None:
    path = zip_with_member(tmp_path / "cut.xlsx", 10_000)
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(BadInput, match=r"cut\.xlsx: corrupt or truncated xlsx file"):
        load_file(path)
