"""Fixtures for the loader tests: a scripted OCR engine and a missing one."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from kbchat.ingest import ocr


class FakeOCR:
    """Stands in for RapidOCR: returns fixed lines and records the images it saw."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.images: list[Any] = []

    @property
    def sizes(self) -> list[tuple[int, int]]:
        return [image.size for image in self.images]

    def __call__(self, image: Any) -> tuple[list[Any], float]:
        self.images.append(image)
        result = [
            [[[0, 40 * i], [100, 40 * i], [100, 40 * i + 30], [0, 40 * i + 30]], text, 0.99]
            for i, text in enumerate(self.lines)
        ]
        return result, 0.0


@pytest.fixture
def fake_ocr(monkeypatch: pytest.MonkeyPatch) -> FakeOCR:
    """Readers built without an engine get this scripted one instead of RapidOCR."""
    engine = FakeOCR(["recognised text", "识别出的文字"])
    monkeypatch.setattr(ocr, "_rapidocr", lambda: engine)
    return engine


@pytest.fixture
def no_ocr(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend rapidocr-onnxruntime is not installed."""
    monkeypatch.setitem(sys.modules, "rapidocr_onnxruntime", None)
