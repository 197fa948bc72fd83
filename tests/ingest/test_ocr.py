"""Images through OCR: reading order, input handling, and the real RapidOCR engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from kbchat.errors import BadInput, MissingDependency
from kbchat.ingest import LoadLimits, load_file
from kbchat.ingest.ocr import _join_lines, ocr_available
from kbchat.sample import sample_dir


def box(x: float, y: float, w: float = 50, h: float = 20) -> list[list[float]]:
    return [[x, y], [x + w, y], [x + w, y + h], [x, y + h]]


def test_boxes_are_joined_in_reading_order() -> None:
    result = [
        [box(200, 52), "world", 0.9],
        [box(10, 50), "hello", 0.9],
        [box(10, 100), "第二行", 0.9],
        [box(70, 102), "中文", 0.9],
        [box(10, 10), "Title", 0.9],
    ]
    assert _join_lines(result) == "Title\nhello world\n第二行中文"


def test_image_goes_through_ocr(tmp_path: Path, fake_ocr: Any) -> None:
    path = tmp_path / "scan.png"
    Image.new("RGBA", (64, 32), (0, 0, 0, 0)).save(path)
    [doc] = load_file(path)
    assert doc.text == "recognised text\n识别出的文字"
    assert doc.title == "scan"
    [image] = fake_ocr.images
    assert image.mode == "RGB" and image.getpixel((0, 0)) == (255, 255, 255)


def test_tall_image_is_read_in_tiles(tmp_path: Path, fake_ocr: Any) -> None:
    path = tmp_path / "long-screenshot.jpg"
    Image.new("RGB", (300, 2500), "white").save(path)
    load_file(path)
    assert fake_ocr.sizes == [(300, 1000), (300, 1000), (300, 500)]


def test_tiny_image_is_not_sent_to_ocr(tmp_path: Path, fake_ocr: Any) -> None:
    path = tmp_path / "dot.bmp"
    Image.new("RGB", (4, 4), "black").save(path)
    with pytest.raises(BadInput, match=r"dot\.bmp: no text found"):
        load_file(path)
    assert fake_ocr.images == []


def test_image_with_ocr_switched_off(tmp_path: Path) -> None:
    path = tmp_path / "photo.webp"
    Image.new("RGB", (64, 64), "white").save(path)
    with pytest.raises(BadInput, match=r"photo\.webp: is an image and OCR is switched off"):
        load_file(path, limits=LoadLimits(ocr=None))


def test_corrupt_image(tmp_path: Path, fake_ocr: Any) -> None:
    path = tmp_path / "broken.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(BadInput, match=r"broken\.jpg: not a readable image"):
        load_file(path)


def test_image_without_ocr_engine(tmp_path: Path, no_ocr: None) -> None:
    path = tmp_path / "scan.png"
    Image.new("RGB", (64, 64), "white").save(path)
    with pytest.raises(MissingDependency, match=r"pip install 'kbchat\[ocr\]'"):
        load_file(path)


needs_ocr = pytest.mark.skipif(not ocr_available(), reason="rapidocr-onnxruntime not installed")


@pytest.mark.integration
@needs_ocr
def test_real_ocr_reads_the_sample_image() -> None:
    [doc] = load_file(sample_dir() / "ocr-note.png")
    text = doc.text
    assert "识别图片中的文字" in text
    assert "RapidOCR" in text
    assert text.index("识别图片中的文字") < text.index("RapidOCR")


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_image_over_pixel_limit_is_refused(
    tmp_path: Path, fake_ocr: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "huge.png"
    Image.new("RGB", (400, 300), "white").save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100_000)
    with pytest.raises(BadInput, match=r"huge\.png: image is 400x300 pixels, over the limit"):
        load_file(path)
    assert fake_ocr.images == []


def test_a_reader_uses_the_engine_it_is_given_and_builds_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kbchat.ingest import ocr
    from tests.ingest.conftest import FakeOCR

    def no_default() -> None:
        raise AssertionError("a default engine was built")

    monkeypatch.setattr(ocr, "_rapidocr", no_default)
    engine = FakeOCR(["given engine"])
    reader = ocr.OcrReader(engine=engine)
    path = tmp_path / "scan.png"
    Image.new("RGB", (64, 32), "white").save(path)
    for _ in range(2):
        [doc] = load_file(path, limits=LoadLimits(ocr=reader))
        assert doc.text == "given engine"
    assert len(engine.images) == 2


def test_a_library_shares_one_reader_and_none_when_ocr_is_off() -> None:
    from kbchat.config import load_settings
    from kbchat.kb.library import Library

    library = Library(load_settings(embedder={"backend": "hash"}))
    off = Library(load_settings(embedder={"backend": "hash"}, ingest={"ocr": False}))
    try:
        library.create("a")
        library.create("b")
        reader = library.get("a").limits.ocr
        assert reader is not None and library.get("b").limits.ocr is reader
        assert off.get("a").limits.ocr is None
    finally:
        library.close()
        off.close()
