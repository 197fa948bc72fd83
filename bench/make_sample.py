"""Regenerate the binary files of the sample knowledge base (kbchat/sample/).

Writes quick-start.docx, settings.xlsx, architecture.pdf and ocr-note.png, all about kbchat
itself, in English and Chinese. Chinese text needs a CJK TrueType font: pass --font, or install
one (Debian: apt-get install fonts-wqy-microhei). Output is deterministic for a given font.

Usage: python bench/make_sample.py [--out kbchat/sample] [--font /path/to/cjk.ttc]
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

FIXED_DATE = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/System/Library/Fonts/PingFang.ttc",
    "C:/Windows/Fonts/msyh.ttc",
)

EMBEDDER_CHOICES = "e5, use, openai, or several joined by '+'"
SETTINGS_EN = [  # (key, meaning); the default comes from kbchat.config (setting_default)
    ("embedder.backend", f"embedding model: {EMBEDDER_CHOICES}"),
    ("embedder.batch_size", "texts embedded per call"),
    ("ingest.chunk_size", "chunk length in characters"),
    ("ingest.chunk_overlap", "characters shared by neighbours"),
    ("ingest.max_file_mb", "larger files are refused"),
    ("ingest.max_unpacked_mb", "zip bomb guard"),
    ("ingest.ocr", "OCR images and scanned pdf pages"),
    ("default_model", "chat model used by default"),
]
SETTINGS_ZH = [
    ("embedder.backend", "向量模型：e5、use 或 openai，多个用 + 连接"),
    ("ingest.chunk_size", "每个片段的字符数"),
    ("ingest.chunk_overlap", "相邻片段重复的字符数"),
    ("ingest.max_file_mb", "超过此大小（MB）的文件会被拒绝"),
    ("ingest.ocr", "是否对图片和扫描页面进行文字识别"),
]
ARCHITECTURE_EN = [
    ("kbchat architecture", ""),
    (
        "Write path",
        "files -> loaders -> splitter -> embedder -> vector store and BM25 -> catalog. "
        "Loaders keep page, sheet, slide and heading metadata. A file is indexed completely "
        "or not at all, and re-adding an unchanged file is a no-op.",
    ),
    (
        "Read path",
        "question -> rewrite follow-ups -> dense and BM25 retrieval -> fusion -> "
        "rerank -> score threshold -> prompt -> local LLM -> answer with citations.",
    ),
    (
        "Storage",
        "One machine: FAISS, SQLite and the embedded llama.cpp runtime. Beyond one "
        "machine: Milvus or PostgreSQL with pgvector, and any OpenAI-compatible model server.",
    ),
]
ARCHITECTURE_ZH = [
    ("kbchat 架构", ""),
    (
        "写入流程",
        "文件 -> 加载器 -> 切分器 -> 向量模型 -> 向量库和 BM25 索引 -> 目录数据库。"
        "加载器保留页码、工作表、幻灯片和标题信息。一个文件要么完整入库，要么完全不入库。",
    ),
    (
        "检索流程",
        "问题 -> 改写追问 -> 向量检索和关键词检索 -> 融合 -> 重排序 -> 分数阈值 -> "
        "提示词 -> 本地大模型 -> 带引用的回答。",
    ),
    (
        "存储",
        "单机部署使用 FAISS、SQLite 和内置的 llama.cpp；规模更大时可以使用 Milvus 或 "
        "PostgreSQL（pgvector），以及任何兼容 OpenAI 接口的模型服务。",
    ),
]
OCR_LINES = [
    "kbchat 可以识别图片中的文字",
    "支持 PNG、JPG、BMP 和 WebP 图片",
    "OCR runs offline with RapidOCR",
    "Install: pip install kbchat[ocr]",
]


def find_font(explicit: Path | None) -> Path:
    """The CJK font to render Chinese with; exits with a hint when there is none."""
    candidates = [explicit] if explicit else [Path(p) for p in FONT_CANDIDATES]
    for candidate in candidates:
        if candidate is not None and candidate.is_file():
            return candidate
    raise SystemExit(
        "no CJK font found; pass --font /path/to/font.ttc "
        "(Debian: apt-get install fonts-wqy-microhei)"
    )


def setting_default(key: str) -> str | int | bool:
    """The default of a dotted setting (``ingest.chunk_size``) as kbchat.config defines it,
    so the sample never states an old default; whole floats are shown as integers."""
    from pydantic import BaseModel

    from kbchat.config import Settings

    model: type[BaseModel] = Settings
    *sections, name = key.split(".")
    for section in sections:
        annotation = model.model_fields[section].annotation
        assert isinstance(annotation, type) and issubclass(annotation, BaseModel), key
        model = annotation
    value = model.model_fields[name].get_default(call_default_factory=True)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    assert isinstance(value, str | int | bool), (key, value)
    return value


def make_docx(out: Path) -> None:
    """Quick start with headings, a table and Chinese and English sections."""
    import docx

    document = docx.Document()
    document.core_properties.created = FIXED_DATE.replace(tzinfo=None)
    document.core_properties.modified = FIXED_DATE.replace(tzinfo=None)
    document.core_properties.title = "kbchat quick start"
    document.add_heading("kbchat quick start", level=0)
    document.add_heading("Create a knowledge base", level=1)
    document.add_paragraph(
        "Run kbchat kb create manuals to create an empty knowledge base called manuals. "
        f"It is built with the default embedder {setting_default('embedder.backend')} "
        "unless you pass --embedder."
    )
    document.add_heading("Add files", level=1)
    document.add_paragraph(
        "Run kbchat kb add manuals ~/Documents/manuals/ to add a folder. Folders are read "
        "recursively and every file gets a status: indexed, failed or skipped."
    )
    table = document.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text = "command"
    table.rows[0].cells[1].text = "what it does"
    for command, meaning in (
        ("kbchat kb files manuals", "lists files with status and chunk counts"),
        ("kbchat kb search manuals QUERY", "prints the best passages with scores"),
        ("kbchat kb sync manuals FOLDER", "adds new, re-indexes changed, removes deleted files"),
    ):
        row = table.add_row()
        row.cells[0].text, row.cells[1].text = command, meaning
    document.add_heading("快速入门", level=1)
    document.add_heading("创建知识库", level=2)
    document.add_paragraph(
        "运行 kbchat kb create manuals 创建一个名为 manuals 的空知识库。"
        f"默认使用 {setting_default('embedder.backend')} 向量模型，可以用 --embedder 另选。"
    )
    document.add_heading("检索", level=2)
    document.add_paragraph(
        '运行 kbchat kb search manuals "保修期多长？" --top-k 5 检索最相关的五个段落，'
        "每个结果都会标明文件名、页码和 0 到 1 之间的分数。"
    )
    document.save(str(out / "quick-start.docx"))


def make_xlsx(out: Path) -> None:
    """Settings reference: an English sheet and a Chinese sheet."""
    import openpyxl

    workbook = openpyxl.Workbook()
    workbook.properties.created = FIXED_DATE.replace(tzinfo=None)
    workbook.properties.modified = FIXED_DATE.replace(tzinfo=None)
    english = workbook.active
    english.title = "settings"
    english.append(["setting", "default", "environment variable", "meaning"])
    english.append(["home", "~/.kbchat", "KBCHAT_HOME", "data directory: catalog, indexes, models"])
    for key, meaning in SETTINGS_EN:
        env = "KBCHAT_" + key.upper().replace(".", "__")
        english.append([key, setting_default(key), env, meaning])
    chinese = workbook.create_sheet("配置")
    chinese.append(["配置项", "默认值", "说明"])
    chinese.append(["home", "~/.kbchat", "数据目录，保存目录数据库、索引和模型"])
    for key, meaning in SETTINGS_ZH:
        chinese.append([key, setting_default(key), meaning])
    workbook.save(out / "settings.xlsx")


def make_pdf(out: Path, font: Path) -> None:
    """Architecture notes: page 1 in English, page 2 in Chinese."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_creation_date(FIXED_DATE)
    pdf.set_title("kbchat architecture")
    pdf.add_font("cjk", "", str(font))
    for page in (ARCHITECTURE_EN, ARCHITECTURE_ZH):
        pdf.add_page()
        (title, _), *sections = page
        pdf.set_font("cjk", size=18)
        pdf.multi_cell(0, 10, title, new_x="LMARGIN", new_y="NEXT")
        for heading, body in sections:
            pdf.set_font("cjk", size=13)
            pdf.multi_cell(0, 9, heading, new_x="LMARGIN", new_y="NEXT")
            pdf.set_font("cjk", size=11)
            pdf.multi_cell(0, 7, body, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(3)
    pdf.output(str(out / "architecture.pdf"))


def make_png(out: Path, font: Path) -> None:
    """A short note rendered as an image, to be read back by OCR."""
    from PIL import Image, ImageDraw, ImageFont

    face = ImageFont.truetype(str(font), 28)
    image = Image.new("L", (620, 60 + 50 * len(OCR_LINES)), 255)
    draw = ImageDraw.Draw(image)
    for index, line in enumerate(OCR_LINES):
        draw.text((30, 30 + 50 * index), line, font=face, fill=0)
    image.save(out / "ocr-note.png", optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parents[1] / "kbchat/sample")
    parser.add_argument("--font", type=Path, default=None, help="CJK TrueType/TTC font file")
    args = parser.parse_args()
    font = find_font(args.font)
    args.out.mkdir(parents=True, exist_ok=True)
    make_docx(args.out)
    make_xlsx(args.out)
    make_pdf(args.out, font)
    make_png(args.out, font)
    for name in ("quick-start.docx", "settings.xlsx", "architecture.pdf", "ocr-note.png"):
        print(f"{args.out / name}: {(args.out / name).stat().st_size} bytes")


if __name__ == "__main__":
    main()
