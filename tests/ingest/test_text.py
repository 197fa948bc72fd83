"""Encoding detection and the plain-text formats: txt, csv/tsv, json, jsonl."""

from __future__ import annotations

import codecs
import json
from pathlib import Path

import pytest

from kbchat.errors import BadInput
from kbchat.ingest import load_file
from kbchat.ingest.text import decode_bytes

CHINESE = (
    "知识库问答系统可以读取你的文档，并用中文或英文回答问题。\n"
    "安装方法：运行 make run 即可。配置文件为 kbchat.toml。\n"
)
TRADITIONAL = (
    "知識庫問答系統可以讀取你的文件，並用中文或英文回答問題。\n安裝方法：執行 make run 即可。\n"
)


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("encoding", "text"),
    [
        ("gbk", CHINESE),
        ("gb2312", CHINESE),
        ("gb18030", CHINESE + "𠀀𪚥 are outside GBK.\n"),
        ("big5", TRADITIONAL),
        ("utf-8", CHINESE),
    ],
)
def test_chinese_encodings_come_out_readable(tmp_path: Path, encoding: str, text: str) -> None:
    path = write(tmp_path, "doc.txt", text.encode(encoding))
    [doc] = load_file(path)
    assert doc.text == text.rstrip()


@pytest.mark.parametrize(
    ("bom", "encoding"),
    [
        (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
        (codecs.BOM_UTF32_LE, "utf-32-le"),
    ],
)
def test_byte_order_marks(tmp_path: Path, bom: bytes, encoding: str) -> None:
    path = write(tmp_path, "bom.txt", bom + CHINESE.encode(encoding))
    [doc] = load_file(path)
    assert doc.text == CHINESE.rstrip()
    assert not doc.text.startswith("\ufeff")


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_utf16_without_bom(tmp_path: Path, encoding: str) -> None:
    text = "kbchat 用户手册\nVersion 1.0: install with pip.\n" * 3
    path = write(tmp_path, "nobom.txt", text.encode(encoding))
    assert load_file(path)[0].text == text.rstrip()


def test_short_gbk_text_is_not_mistaken_for_big5_or_korean() -> None:
    for text in ("你好", "保修期多长？", "价格：100元"):
        assert decode_bytes(text.encode("gbk"), "short.txt") == text


def test_newlines_are_normalised(tmp_path: Path) -> None:
    path = write(tmp_path, "crlf.txt", "第一行\r\n第二行\rthird\n".encode("gbk"))
    assert load_file(path)[0].text == "第一行\n第二行\nthird"


def test_binary_file_named_txt_is_refused(tmp_path: Path) -> None:
    data = bytes(range(256)) * 40
    path = write(tmp_path, "image.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + data)
    with pytest.raises(BadInput, match=r"image\.txt.*binary"):
        load_file(path)


def test_undecodable_bytes_without_nuls_are_refused(tmp_path: Path) -> None:
    data = bytes(b for b in range(1, 256) if b not in b"\t\n\r") * 20
    path = write(tmp_path, "noise.txt", data)
    with pytest.raises(BadInput, match=r"noise\.txt"):
        load_file(path)


def test_private_use_and_rare_characters_are_text(tmp_path: Path) -> None:
    icons = "\ue600\ue61d\uf8ff\U000f0001"  # icon-font glyphs (BMP and plane-15 private use)
    page = "".join(
        f"{icons[i % 4]} 公园年票第{i}条：持卡人可免费入园。\U0001f333\n" for i in range(30)
    )
    for encoding in ("utf-8", "utf-16", "gb18030"):
        path = write(tmp_path, f"page-{encoding}.txt", page.encode(encoding))
        assert load_file(path)[0].text == page.rstrip("\n"), encoding


def test_refusal_names_the_first_control_byte(tmp_path: Path) -> None:
    data = b"plain text start " + bytes([1, 2, 3, 4, 5, 6, 7, 8]) * 10 + b" more text"
    with pytest.raises(BadInput, match=r"noise\.txt: .*binary.*control 0x01, at byte 17$"):
        decode_bytes(data, "noise.txt")


def test_refusal_names_the_first_nul_byte(tmp_path: Path) -> None:
    data = b"ELF header then data" + bytes(range(256)) * 8
    with pytest.raises(BadInput, match=r"blob\.txt: .*binary.*NUL bytes, the first at byte 20"):
        decode_bytes(data, "blob.txt")


def test_refusal_names_the_first_undecodable_bytes() -> None:
    data = b"text" + bytes(range(0x80, 0x100)) * 20
    with pytest.raises(BadInput, match=r"rand\.txt: looks like a binary file"):
        decode_bytes(data, "rand.txt")


def test_replacement_characters_the_file_holds_are_text() -> None:
    # A lossy conversion upstream left U+FFFD in a short snippet: 2 of 40 characters.
    text = "\ufffd\ufffd宣言」倡议全球的资讯科技业者抵制第二届世界互联网大会。"
    for encoding in ("utf-8", "gb18030"):
        assert decode_bytes(text.encode(encoding), "snippet.txt") == text, encoding
    # Bytes no encoding reads are still refused, U+FFFD written beside them or not.
    data = text.encode() + bytes(range(0x80, 0x100)) * 20
    with pytest.raises(BadInput, match=r"mixed\.txt: looks like a binary file"):
        decode_bytes(data, "mixed.txt")


def test_stray_nul_in_real_text_is_stripped(tmp_path: Path) -> None:
    text = "A long line of ordinary English text about kbchat. " * 40
    path = write(tmp_path, "padded.txt", text.encode() + b"\x00\x00")
    assert load_file(path)[0].text == text.rstrip()


def test_csv_rows_are_self_describing(tmp_path: Path) -> None:
    data = "名称,版本,说明\nkbchat,0.1,本地知识库\nfaiss,1.8,\n,,\n"
    path = write(tmp_path, "deps.csv", data.encode("gbk"))
    [doc] = load_file(path)
    assert doc.kind == "table" and doc.sheet is None and doc.title == "deps"
    assert doc.text.split("\n") == [
        "名称: kbchat | 版本: 0.1 | 说明: 本地知识库",
        "名称: faiss | 版本: 1.8",
    ]


def test_csv_delimiter_is_sniffed_and_blank_headers_numbered(tmp_path: Path) -> None:
    data = ';city;note\n1;Paris;"two\nlines"\n2;Beijing;north\n'
    path = write(tmp_path, "cities.csv", data.encode())
    lines = load_file(path)[0].text.split("\n")
    assert lines == [
        "column 1: 1 | city: Paris | note: two lines",
        "column 1: 2 | city: Beijing | note: north",
    ]


def test_tsv(tmp_path: Path) -> None:
    path = write(tmp_path, "t.tsv", b"a\tb\n1\t2, 3\n")
    assert load_file(path)[0].text == "a: 1 | b: 2, 3"


def test_extra_cells_get_column_names(tmp_path: Path) -> None:
    path = write(tmp_path, "wide.csv", b"a,b\n1,2,3\n")
    assert load_file(path)[0].text == "a: 1 | b: 2 | column 3: 3"


def test_json_is_pretty_printed(tmp_path: Path) -> None:
    value = {"name": "kbchat", "语言": ["中文", "English"]}
    path = write(tmp_path, "meta.json", json.dumps(value, ensure_ascii=True).encode())
    [doc] = load_file(path)
    assert doc.kind == "text"
    assert json.loads(doc.text) == value
    assert '"语言": [' in doc.text


def test_invalid_json_names_file(tmp_path: Path) -> None:
    path = write(tmp_path, "broken.json", b'{"a": ')
    with pytest.raises(BadInput, match=r"broken\.json: invalid JSON"):
        load_file(path)


def test_jsonl_records_become_rows(tmp_path: Path) -> None:
    lines = [
        {"title": "如何安装", "id": 1, "tags": ["faq"], "empty": None},
        {"title": "multi\nline", "id": 2},
        "a bare string",
    ]
    text = "\n".join(json.dumps(line, ensure_ascii=False) for line in lines) + "\n\n"
    [doc] = load_file(write(tmp_path, "q.jsonl", text.encode()))
    assert doc.kind == "table"
    assert doc.text.split("\n") == [
        'title: 如何安装 | id: 1 | tags: ["faq"]',
        "title: multi line | id: 2",
        "a bare string",
    ]


def test_jsonl_bad_line_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.jsonl", b'{"a": 1}\n{oops}\n')
    with pytest.raises(BadInput, match=r"bad\.jsonl: line 2"):
        load_file(path)
