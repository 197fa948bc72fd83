"""Optical character recognition with RapidOCR (onnxruntime; models ship inside the wheel).

An ``OcrReader`` builds its engine on first use and keeps it; a library makes one reader
and its knowledge bases share it (nothing is kept by the module). Nothing is downloaded.
"""

from __future__ import annotations

import io
import threading
from pathlib import Path, PurePath
from typing import Any

from kbchat.errors import BackendError, BadInput, MissingDependency
from kbchat.text import is_wide
from kbchat.types import Document

_PACKAGE = "rapidocr-onnxruntime"
_MIN_SIDE_PX = 8
_TILE_RATIO = 2.0  # tall images are OCR'd in tiles this many widths high


def ocr_available() -> bool:
    """Whether the OCR engine can be imported."""
    try:
        import rapidocr_onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def _rapidocr() -> Any:
    try:
        from rapidocr_onnxruntime import RapidOCR
    except ImportError:
        raise MissingDependency(_PACKAGE, "ocr", "Reading text from images") from None
    # One thread: ingestion runs OCR beside the embedder, and two cores are common.
    return RapidOCR(intra_op_num_threads=1)


class OcrReader:
    """Reads the text in images; the engine is built on first use (about a second) and kept.

    Args:
        engine: A RapidOCR-like callable, ``engine(rgb_image) -> (boxes, elapsed)``, where
            each box is ``(corners, text, score)`` (tests pass a scripted one); default:
            RapidOCR, built when first needed.
    """

    def __init__(self, engine: Any = None) -> None:
        self._engine = engine
        self._lock = threading.Lock()

    def read(self, image: Any) -> str:
        """Recognise the text in a Pillow image, lines joined in reading order.

        Raises:
            MissingDependency: rapidocr-onnxruntime is not installed.
            BackendError: the OCR engine failed.
        """
        width, height = image.size
        if min(width, height) < _MIN_SIDE_PX:
            return ""
        image = to_rgb(image)
        tile = max(int(width * _TILE_RATIO), 1000)
        parts: list[str] = []
        for top in range(0, height, tile):
            crop = image if height <= tile else image.crop((0, top, width, min(top + tile, height)))
            with self._lock:  # the engine is not thread-safe
                if self._engine is None:
                    self._engine = _rapidocr()
                try:
                    result, _ = self._engine(crop)
                except Exception as exc:  # onnxruntime and cv2 raise many unrelated types
                    raise BackendError(f"OCR engine failed: {exc}") from exc
            parts.append(_join_lines(result or []))
        return "\n".join(part for part in parts if part)


def open_image(data: bytes, name: str) -> Any:
    """Decode image bytes with Pillow (fully loaded, so errors surface here).

    Raises:
        BadInput: the bytes are not a readable image, or it has more pixels than Pillow's
            decompression-bomb limit.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(data))
        limit = Image.MAX_IMAGE_PIXELS
        if limit is not None and image.width * image.height > limit:
            raise BadInput(
                f"{name}: image is {image.width}x{image.height} pixels, "
                f"over the limit of {limit} (possible decompression bomb)"
            )
        image.load()
    except (UnidentifiedImageError, Image.DecompressionBombError):
        raise BadInput(f"{name}: not a readable image (corrupt, truncated or too large)") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise BadInput(f"{name}: not a readable image: {exc}") from None
    return image


def to_rgb(image: Any) -> Any:
    """A Pillow image as RGB, transparent areas made white (text stays dark on light)."""
    from PIL import Image

    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def _join_lines(result: list[Any]) -> str:
    """Group recognised boxes into lines (overlapping vertically), left to right."""
    boxes = []
    for box, text, _score in result:
        ys = [point[1] for point in box]
        xs = [point[0] for point in box]
        boxes.append((min(ys), max(ys), min(xs), str(text).strip()))
    boxes.sort(key=lambda b: ((b[0] + b[1]) / 2, b[2]))
    lines: list[list[tuple[float, float, float, str]]] = []
    for box in boxes:
        if not box[3]:
            continue
        current = lines[-1] if lines else None
        if current is not None and _same_line(current[-1], box):
            current.append(box)
        else:
            lines.append([box])
    return "\n".join(_line_text(sorted(line, key=lambda b: b[2])) for line in lines)


def _same_line(a: tuple[float, float, float, str], b: tuple[float, float, float, str]) -> bool:
    centre = (b[0] + b[1]) / 2
    return a[0] <= centre <= a[1]


def _line_text(line: list[tuple[float, float, float, str]]) -> str:
    text = line[0][3]
    for box in line[1:]:
        glue = "" if is_wide(text[-1]) and is_wide(box[3][0]) else " "
        text += glue + box[3]
    return text


def load_image(path: Path, source: str, *, ocr: OcrReader | None = None) -> list[Document]:
    """An image file as one Document of OCR'd text.

    Raises:
        BadInput: OCR is switched off, or the image is unreadable.
        MissingDependency: rapidocr-onnxruntime is not installed.
    """
    if ocr is None:
        raise BadInput(f"{source}: is an image and OCR is switched off (ingest.ocr = false)")
    image = open_image(path.read_bytes(), source)
    text = ocr.read(image)
    return [Document(text=text, source=source, title=PurePath(source).stem)]
