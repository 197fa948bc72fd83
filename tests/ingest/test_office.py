"""docx, xlsx and pptx loaders, with files generated in tmp_path."""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from pathlib import Path
from typing import Any

import docx
import openpyxl
import pytest
from PIL import Image
from pptx import Presentation
from pptx.util import Inches

from kbchat.errors import BadInput, MissingDependency
from kbchat.ingest import LoadLimits, load_file


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (120, 40), "white").save(buffer, format="PNG")
    return buffer.getvalue()


def make_docx(path: Path, *, image: bool = False) -> Path:
    document = docx.Document()
    document.add_paragraph("Preface text.")
    document.add_heading("安装", level=1)
    document.add_paragraph("运行 pip install kbchat。")
    document.add_heading("Linux", level=2)
    document.add_paragraph("Use a virtualenv.")
    table = document.add_table(rows=1, cols=3)
    for cell, text in zip(table.rows[0].cells, ("setting", "default", ""), strict=True):
        cell.text = text
    for values in (("chunk_size", "400", "chars"), ("ocr", "", "")):
        row = table.add_row()
        for cell, text in zip(row.cells, values, strict=True):
            cell.text = text
    document.add_paragraph("After the table.")
    document.add_heading("配置", level=1)
    document.add_paragraph("编辑 kbchat.toml。")
    if image:
        document.add_picture(io.BytesIO(png_bytes()))
    document.save(str(path))
    return path


def test_docx_sections_tables_and_order(tmp_path: Path) -> None:
    docs = load_file(make_docx(tmp_path / "guide.docx"), limits=LoadLimits(ocr=None))
    assert [(doc.headings, doc.kind) for doc in docs] == [
        ((), "text"),
        (("安装",), "text"),
        (("安装", "Linux"), "text"),
        (("安装", "Linux"), "table"),
        (("安装", "Linux"), "text"),
        (("配置",), "text"),
    ]
    assert docs[1].text == "安装\n运行 pip install kbchat。"
    assert docs[3].text == "setting: chunk_size | default: 400 | column 3: chars\nsetting: ocr"
    assert docs[4].text == "After the table."
    assert {doc.title for doc in docs} == {"guide"}


def test_docx_title_style_sets_title(tmp_path: Path) -> None:
    document = docx.Document()
    document.add_heading("kbchat 手册", level=0)
    document.add_heading("Intro", level=1)
    document.add_paragraph("Body.")
    path = tmp_path / "manual.docx"
    document.save(str(path))
    [doc] = load_file(path)
    assert doc.title == "kbchat 手册"
    assert doc.headings == ("Intro",)
    assert doc.text == "kbchat 手册\nIntro\nBody."


def test_docx_images_are_ocrd(tmp_path: Path, fake_ocr: Any) -> None:
    docs = load_file(make_docx(tmp_path / "pic.docx", image=True))
    assert fake_ocr.sizes == [(120, 40)]
    assert docs[-1].text.endswith("recognised text\n识别出的文字")


def test_docx_images_skipped_without_ocr_engine(tmp_path: Path, no_ocr: None) -> None:
    docs = load_file(make_docx(tmp_path / "pic.docx", image=True))
    assert docs[-1].text == "配置\n编辑 kbchat.toml。"


def test_docx_of_only_images_needs_ocr(tmp_path: Path, no_ocr: None) -> None:
    document = docx.Document()
    document.add_picture(io.BytesIO(png_bytes()))
    path = tmp_path / "scan.docx"
    document.save(str(path))
    with pytest.raises(MissingDependency, match="rapidocr"):
        load_file(path)


def test_xlsx_one_table_per_sheet(tmp_path: Path) -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "部件"
    sheet.append([])
    sheet.append(["名称", None, "price", "since"])
    sheet.append(["螺丝", "M3", 0.5, dt.datetime(2024, 5, 1)])
    sheet.append(["nut", None, 2.0, dt.datetime(2024, 5, 1, 13, 30)])
    workbook.create_sheet("empty")
    other = workbook.create_sheet("notes")
    other["B2"] = "only a header"
    path = tmp_path / "parts.xlsx"
    workbook.save(path)
    docs = load_file(path)
    assert [(doc.sheet, doc.kind, doc.title) for doc in docs] == [
        ("部件", "table", "parts"),
        ("notes", "table", "parts"),
    ]
    assert docs[0].text.split("\n") == [
        "名称: 螺丝 | column 2: M3 | price: 0.5 | since: 2024-05-01",
        "名称: nut | price: 2 | since: 2024-05-01 13:30:00",
    ]
    assert docs[1].text == "only a header"


def test_xlsx_formulas_without_cached_values_get_a_note(tmp_path: Path) -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "calc"
    sheet.append(["a", "b"])
    sheet.append([1, "=A2*2"])
    path = tmp_path / "calc.xlsm"
    workbook.save(path)
    # openpyxl writes no cached value, so data_only yields no cell rather than the formula.
    [doc] = load_file(path)
    assert doc.text == "a: 1"
    assert len(doc.notes) == 1
    assert doc.notes[0].startswith("calc.xlsm: sheet 'calc' has 1 of 1 formula cells without")


def _with_cached_values(path: Path, values: dict[str, str]) -> None:
    """Rewrite a workbook as Excel saves it: each formula cell followed by its cached value."""
    with zipfile.ZipFile(path) as source:
        parts = {name: source.read(name) for name in source.namelist()}
    xml = parts["xl/worksheets/sheet1.xml"].decode()
    for ref, value in values.items():
        start = xml.index(f'<c r="{ref}"')
        end = xml.index("</c>", start)
        cell = xml[start:end].replace("<v></v>", "").replace("<v/>", "")
        xml = xml[:start] + cell + f"<v>{value}</v>" + xml[end:]
    parts["xl/worksheets/sheet1.xml"] = xml.encode()
    with zipfile.ZipFile(path, "w") as target:
        for name, data in parts.items():
            target.writestr(name, data)


def test_xlsx_formulas_give_cached_values(tmp_path: Path) -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["item", "qty", "price", "total"])
    sheet.append(["kettle", 2, 30, "=B2*C2"])
    path = tmp_path / "order.xlsx"
    workbook.save(path)
    _with_cached_values(path, {"D2": "60"})
    [doc] = load_file(path)
    assert doc.text == "item: kettle | qty: 2 | price: 30 | total: 60"
    assert doc.notes == ()


def test_xlsx_merged_cells_reach_every_row_and_column(tmp_path: Path) -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["部门", "日期", "值班人", "备注"])
    for day in range(1, 7):
        sheet.append(["客服部" if day == 1 else None, f"12月{day}日", f"人{day}", None])
    sheet.append(["运维部", "12月7日", "轮休", None])
    sheet.merge_cells("A2:A7")
    sheet["C8"] = "轮休"
    sheet.merge_cells("C8:D8")
    path = tmp_path / "duty.xlsx"
    workbook.save(path)
    lines = load_file(path)[0].text.split("\n")
    assert lines[:6] == [f"部门: 客服部 | 日期: 12月{d}日 | 值班人: 人{d}" for d in range(1, 7)]
    assert lines[6] == "部门: 运维部 | 日期: 12月7日 | 值班人: 轮休 | 备注: 轮休"


def test_xlsx_merged_rows_keep_their_group_in_every_chunk(tmp_path: Path) -> None:
    from kbchat.ingest.splitter import split_documents

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["region", "store", "manager"])
    for number in range(40):
        sheet.append(["North" if number == 0 else None, f"store {number}", f"manager {number}"])
    sheet.merge_cells("A2:A41")
    path = tmp_path / "stores.xlsx"
    workbook.save(path)
    chunks = split_documents(load_file(path), chunk_size=120, chunk_overlap=0)
    assert len(chunks) > 5
    assert all(line.startswith("region: North | ") for c in chunks for line in c.text.split("\n"))


def make_pptx(path: Path, *, picture: bool = False) -> Path:
    presentation = Presentation()
    slide = presentation.slides.add_slide(presentation.slide_layouts[1])
    slide.shapes.title.text = "kbchat 介绍"
    slide.placeholders[1].text = "本地知识库\nRuns offline"
    slide.notes_slide.notes_text_frame.text = "Speaker notes here."
    second = presentation.slides.add_slide(presentation.slide_layouts[5])
    second.shapes.title.text = "Settings"
    table = second.shapes.add_table(3, 2, Inches(1), Inches(2), Inches(6), Inches(2)).table
    for r, row in enumerate((("setting", "default"), ("ocr", "true"), ("chunk_size", "400"))):
        for c, text in enumerate(row):
            table.cell(r, c).text = text
    group = second.shapes.add_group_shape()
    box = group.shapes.add_textbox(Inches(1), Inches(5), Inches(4), Inches(1))
    box.text_frame.text = "grouped text"
    if picture:
        presentation.slides.add_slide(presentation.slide_layouts[6]).shapes.add_picture(
            io.BytesIO(png_bytes()), Inches(1), Inches(1)
        )
    presentation.save(str(path))
    return path


def test_pptx_one_document_per_slide(tmp_path: Path) -> None:
    docs = load_file(make_pptx(tmp_path / "deck.pptx"))
    assert [(doc.slide, doc.headings, doc.title) for doc in docs] == [
        (1, ("kbchat 介绍",), "deck"),
        (2, ("Settings",), "deck"),
    ]
    assert docs[0].text == "kbchat 介绍\n本地知识库\nRuns offline\n\nSpeaker notes here."
    assert docs[1].text == (
        "Settings\nsetting: ocr | default: true\nsetting: chunk_size | default: 400\ngrouped text"
    )


def test_pptx_pictures_are_ocrd(tmp_path: Path, fake_ocr: Any) -> None:
    docs = load_file(make_pptx(tmp_path / "deck.pptx", picture=True))
    assert docs[-1].slide == 3
    assert docs[-1].text == "recognised text\n识别出的文字"


@pytest.mark.parametrize("kind", ["docx", "xlsx", "pptx"])
def test_truncated_office_files_are_refused(tmp_path: Path, kind: str) -> None:
    good = tmp_path / f"good.{kind}"
    if kind == "docx":
        make_docx(good)
    elif kind == "pptx":
        make_pptx(good)
    else:
        openpyxl.Workbook().save(good)
    bad = tmp_path / f"bad.{kind}"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(BadInput, match=rf"bad\.{kind}: corrupt or truncated {kind}"):
        load_file(bad)


@pytest.mark.parametrize("kind", ["docx", "xlsx", "pptx"])
def test_zip_that_is_not_an_office_file(tmp_path: Path, kind: str) -> None:
    import zipfile

    path = tmp_path / f"fake.{kind}"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("hello.txt", "not an office document")
    with pytest.raises(BadInput, match=rf"fake\.{kind}: corrupt or truncated"):
        load_file(path)


def test_docx_merged_cells_fill_the_grid(tmp_path: Path) -> None:
    document = docx.Document()
    table = document.add_table(rows=4, cols=3)
    for r, values in enumerate(
        (("部门", "日期", "值班人"), ("客服部", "12月1日", "王磊"), ("", "12月2日", "李娜"))
    ):
        for c, text in enumerate(values):
            table.cell(r, c).text = text
    table.cell(1, 0).merge(table.cell(2, 0))  # vertical merge: 客服部 over two rows
    table.cell(3, 0).text = "合计"
    table.cell(3, 1).merge(table.cell(3, 2)).text = "2人"  # horizontal merge (gridSpan)
    path = tmp_path / "duty.docx"
    document.save(str(path))
    [doc] = [d for d in load_file(path) if d.kind == "table"]
    assert doc.text.split("\n") == [
        "部门: 客服部 | 日期: 12月1日 | 值班人: 王磊",
        "部门: 客服部 | 日期: 12月2日 | 值班人: 李娜",
        "部门: 合计 | 日期: 2人 | 值班人: 2人",
    ]


def test_pptx_merged_cells_fill_the_grid(tmp_path: Path) -> None:
    presentation = Presentation()
    slide = presentation.slides.add_slide(presentation.slide_layouts[6])
    table = slide.shapes.add_table(3, 2, Inches(1), Inches(1), Inches(6), Inches(2)).table
    table.cell(0, 0).text, table.cell(0, 1).text = "region", "store"
    table.cell(1, 0).text, table.cell(1, 1).text, table.cell(2, 1).text = "North", "A", "B"
    table.cell(1, 0).merge(table.cell(2, 0))
    path = tmp_path / "stores.pptx"
    presentation.save(str(path))
    assert load_file(path)[0].text == "region: North | store: A\nregion: North | store: B"
