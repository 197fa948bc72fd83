"""The sample knowledge base shipped in kbchat/sample: present, small, bilingual, loadable."""

from __future__ import annotations

from pathlib import Path

import pytest

from kbchat.ingest import LoadLimits, is_supported, load_file
from kbchat.sample import sample_dir

BINARY = ("quick-start.docx", "settings.xlsx", "architecture.pdf", "ocr-note.png")


def sample_files() -> list[Path]:
    return sorted(p for p in sample_dir().iterdir() if p.is_file() and not p.name.startswith("__"))


def test_sample_folder_is_small_and_complete() -> None:
    files = sample_files()
    names = {p.name for p in files}
    assert set(BINARY) <= names
    assert {p.suffix for p in files} >= {".md", ".txt", ".pdf", ".docx", ".xlsx", ".png"}
    assert sum(p.stat().st_size for p in sample_dir().rglob("*") if p.is_file()) < 2**20
    assert all(is_supported(p) for p in files)


@pytest.mark.parametrize("name", [p.name for p in sample_files() if p.suffix != ".png"])
def test_every_sample_file_loads(name: str) -> None:
    docs = load_file(sample_dir() / name, limits=LoadLimits(ocr=None))
    assert docs and all(doc.text.strip() for doc in docs)
    assert "kbchat" in " ".join(doc.text for doc in docs)


def test_sample_is_bilingual() -> None:
    texts = [
        doc.text
        for path in sample_files()
        if path.suffix != ".png"
        for doc in load_file(path, limits=LoadLimits(ocr=None))
    ]
    assert any("知识库" in text for text in texts)
    assert any("knowledge base" in text for text in texts)


def test_sample_binaries_keep_their_structure() -> None:
    pdf = load_file(sample_dir() / "architecture.pdf")
    assert [doc.page for doc in pdf] == [1, 2] and "架构" in pdf[1].text
    sheets = load_file(sample_dir() / "settings.xlsx")
    assert [doc.sheet for doc in sheets] == ["settings", "配置"]
    assert "setting: ingest.chunk_size | default: 400" in sheets[0].text
    docx = load_file(sample_dir() / "quick-start.docx")
    assert ("快速入门", "检索") in [doc.headings for doc in docx]


def _default_of(key: str) -> str:
    from kbchat.config import Settings

    value: object = Settings.model_construct()
    for part in key.split("."):
        value = getattr(value, part)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def test_the_sample_states_the_current_defaults() -> None:
    rows = [
        dict(cell.split(": ", 1) for cell in line.split(" | "))
        for doc in load_file(sample_dir() / "settings.xlsx")
        for line in doc.text.splitlines()
    ]
    stated = {
        row.get("setting", row.get("配置项")): row.get("default", row.get("默认值")) for row in rows
    }
    assert "embedder.backend" in stated and "ingest.chunk_size" in stated
    for key, default in stated.items():
        assert key is not None
        if key != "home":  # shown as ~/.kbchat, the default wherever the user's home is
            assert default == _default_of(key), key
    quick_start = " ".join(doc.text for doc in load_file(sample_dir() / "quick-start.docx"))
    assert f"default embedder {_default_of('embedder.backend')} " in quick_start
    assert f"默认使用 {_default_of('embedder.backend')} 向量模型" in quick_start
