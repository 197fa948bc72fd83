"""Markdown, HTML, e-mail and EPUB loaders."""

from __future__ import annotations

import zipfile
from email.message import EmailMessage
from pathlib import Path

import pytest

from kbchat.errors import BadInput
from kbchat.ingest import load_file

MARKDOWN = """\
Intro before any heading.

# kbchat Guide

Welcome ![the logo](https://example.com/logo.png) to kbchat.

## Install

Use pip.

### Linux

```bash
# not a heading
pip install kbchat
```

## 配置

###中文标题没有空格
正文内容。

Setext title
------------

| name | default |
|------|---------|
| chunk_size | 400 |
| ocr | true |

After the table.
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_markdown_sections_have_heading_paths(tmp_path: Path) -> None:
    docs = load_file(write(tmp_path, "guide.md", MARKDOWN))
    assert [doc.headings for doc in docs] == [
        (),
        ("kbchat Guide",),
        ("kbchat Guide", "Install"),
        ("kbchat Guide", "Install", "Linux"),
        ("kbchat Guide", "配置", "中文标题没有空格"),
        ("kbchat Guide", "Setext title"),
        ("kbchat Guide", "Setext title"),
    ]
    assert {doc.title for doc in docs} == {"kbchat Guide"}
    assert [doc.kind for doc in docs][-2:] == ["table", "text"]


def test_markdown_keeps_code_and_alt_text(tmp_path: Path) -> None:
    docs = load_file(write(tmp_path, "guide.md", MARKDOWN))
    by_path = {doc.headings: doc.text for doc in docs if doc.kind == "text"}
    assert "Welcome the logo to kbchat." in by_path[("kbchat Guide",)]
    assert "example.com" not in "".join(by_path.values())
    linux = by_path[("kbchat Guide", "Install", "Linux")]
    assert "```bash\n# not a heading\npip install kbchat\n```" in linux


def test_markdown_heading_only_section_is_carried_into_the_next(tmp_path: Path) -> None:
    docs = load_file(write(tmp_path, "guide.md", MARKDOWN))
    chinese = next(doc for doc in docs if "正文内容" in doc.text)
    assert chinese.text == "配置\n\n中文标题没有空格\n正文内容。"


def test_markdown_table_rows(tmp_path: Path) -> None:
    docs = load_file(write(tmp_path, "guide.md", MARKDOWN))
    table = next(doc for doc in docs if doc.kind == "table")
    assert table.text == "name: chunk_size | default: 400\nname: ocr | default: true"


def test_markdown_title_falls_back_to_front_matter_then_stem(tmp_path: Path) -> None:
    front = "---\ntitle: From Front Matter\ntags: x\n---\n## Only H2\ntext\n"
    assert load_file(write(tmp_path, "a.md", front))[0].title == "From Front Matter"
    assert load_file(write(tmp_path, "notes.md", "## H2\ntext\n"))[0].title == "notes"


HTML = """<!doctype html>
<html><head><title>kbchat 帮助</title><style>body { color: red }</style></head>
<body>
<nav><a href="/">Home</a> | <a href="/docs">Docs</a></nav>
<script>var secret = "do not index";</script>
<h1>Help</h1>
<p>kbchat answers <b>questions</b> about<br>your files.</p>
<h2>Limits</h2>
<ul><li>max_file_mb = 100</li><li>OCR <img src="x.png" alt="diagram"> on</li></ul>
<table><tr><th>setting</th><th>default</th></tr><tr><td>ocr</td><td>true</td></tr></table>
<pre>line one
    indented line</pre>
</body></html>
"""


def test_html_sections_title_and_dropped_tags(tmp_path: Path) -> None:
    docs = load_file(write(tmp_path, "help.html", HTML))
    assert {doc.title for doc in docs} == {"kbchat 帮助"}
    everything = "\n".join(doc.text for doc in docs)
    assert "secret" not in everything and "color" not in everything and "Home" not in everything
    help_doc, limits, table, code = docs
    assert help_doc.headings == ("Help",)
    assert help_doc.text == "Help\nkbchat answers questions about\nyour files."
    assert limits.headings == ("Help", "Limits")
    assert limits.text == "Limits\nmax_file_mb = 100\nOCR diagram on"
    assert (table.kind, table.text) == ("table", "setting: ocr | default: true")
    assert code.text == "line one\n    indented line"


def test_html_without_title_uses_first_h1(tmp_path: Path) -> None:
    docs = load_file(write(tmp_path, "page.htm", "<h1>First</h1><p>body</p>"))
    assert docs[0].title == "First"


def test_eml_plain_text(tmp_path: Path) -> None:
    message = EmailMessage()
    message["Subject"] = "保修政策"
    message["From"] = "support@example.com"
    message["To"] = "user@example.com"
    message.set_content("保修期为两年。\nWarranty is two years.")
    message.add_attachment(b"%PDF-1.4", maintype="application", subtype="pdf", filename="terms.pdf")
    path = tmp_path / "mail.eml"
    path.write_bytes(bytes(message))
    [doc] = load_file(path)
    assert doc.title == "保修政策"
    assert "Subject: 保修政策" in doc.text and "From: support@example.com" in doc.text
    assert "保修期为两年。\nWarranty is two years." in doc.text
    assert doc.text.endswith("Attachments: terms.pdf")


def test_eml_html_body(tmp_path: Path) -> None:
    message = EmailMessage()
    message["Subject"] = "Newsletter"
    message.set_content("<html><body><h1>News</h1><p>kbchat 0.1 released</p></body></html>", "html")
    path = tmp_path / "news.eml"
    path.write_bytes(bytes(message))
    [doc] = load_file(path)
    assert "News\nkbchat 0.1 released" in doc.text
    assert "<p>" not in doc.text


def make_epub(path: Path, chapters: dict[str, str]) -> Path:
    container = (
        '<?xml version="1.0"?><container version="1.0" '
        'xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles>'
        '<rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/>'
        "</rootfiles></container>"
    )
    items = "".join(
        f'<item id="c{i}" href="{name}" media-type="application/xhtml+xml"/>'
        for i, name in enumerate(chapters)
    )
    spine = "".join(f'<itemref idref="c{i}"/>' for i in reversed(range(len(chapters))))
    opf = (
        '<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0">'
        '<metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>kbchat 手册</dc:title>'
        f"</metadata><manifest>{items}</manifest><spine>{spine}</spine></package>"
    )
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("mimetype", "application/epub+zip")
        archive.writestr("META-INF/container.xml", container)
        archive.writestr("OEBPS/content.opf", opf)
        for name, body in chapters.items():
            archive.writestr(f"OEBPS/{name}", f"<html><body>{body}</body></html>")
    return path


def test_epub_chapters_in_spine_order(tmp_path: Path) -> None:
    path = make_epub(
        tmp_path / "book.epub",
        {
            "two.xhtml": "<h1>第二章</h1><p>配置</p>",
            "one.xhtml": "<h1>Chapter 1</h1><p>Install kbchat.</p>",
        },
    )
    docs = load_file(path)
    assert [doc.headings for doc in docs] == [("Chapter 1",), ("第二章",)]
    assert {doc.title for doc in docs} == {"kbchat 手册"}
    assert docs[0].text == "Chapter 1\nInstall kbchat."


def test_epub_without_container_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "bad.epub"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("mimetype", "application/epub+zip")
    with pytest.raises(BadInput, match=r"bad\.epub: corrupt or truncated epub"):
        load_file(path)


def test_eml_of_random_bytes_is_refused_naming_the_byte(tmp_path: Path) -> None:
    import random

    noise = random.Random(7).randbytes(4000)
    path = tmp_path / "noise.eml"
    path.write_bytes(b"Subject: hello\r\n\r\n" + noise)
    first_nul = len(b"Subject: hello\r\n\r\n") + noise.index(0)
    with pytest.raises(
        BadInput, match=rf"noise\.eml: .*binary.*NUL bytes, the first at byte {first_nul}"
    ):
        load_file(path)


def test_eml_with_binary_body_behind_a_text_type_is_refused(tmp_path: Path) -> None:
    import base64

    payload = base64.encodebytes(bytes(range(1, 32)) * 40).decode()
    path = tmp_path / "mail.eml"
    path.write_text(
        "Subject: report\nContent-Type: text/plain; charset=utf-8\n"
        f"Content-Transfer-Encoding: base64\n\n{payload}",
        encoding="utf-8",
    )
    with pytest.raises(BadInput, match=r"mail\.eml \(message body\): looks like a binary file"):
        load_file(path)


def test_html_rowspan_and_colspan_fill_the_grid(tmp_path: Path) -> None:
    path = tmp_path / "duty.html"
    path.write_text(
        "<table><tr><th>部门</th><th>日期</th><th>值班人</th></tr>"
        "<tr><td rowspan='2'>客服部</td><td>12月1日</td><td>王磊</td></tr>"
        "<tr><td>12月2日</td><td>李娜</td></tr>"
        "<tr><td>运维部</td><td colspan='2'>停班</td></tr>"
        "<tr><td rowspan='0'>后勤</td><td>12月3日</td><td>赵明</td></tr>"
        "<tr><td>12月4日</td><td rowspan='x'>钱亮</td></tr></table>",
        encoding="utf-8",
    )
    [table] = load_file(path)
    assert table.text.split("\n") == [
        "部门: 客服部 | 日期: 12月1日 | 值班人: 王磊",
        "部门: 客服部 | 日期: 12月2日 | 值班人: 李娜",
        "部门: 运维部 | 日期: 停班 | 值班人: 停班",
        "部门: 后勤 | 日期: 12月3日 | 值班人: 赵明",
        "部门: 后勤 | 日期: 12月4日 | 值班人: 钱亮",
    ]


def test_html_huge_spans_are_bounded(tmp_path: Path) -> None:
    path = tmp_path / "wide.html"
    path.write_text(
        "<table><tr><th>a</th><th>b</th></tr>"
        "<tr><td colspan='99999999'>x</td></tr><tr><td rowspan='99999999'>y</td><td>z</td></tr>"
        "</table>",
        encoding="utf-8",
    )
    [table] = load_file(path)
    assert table.text.split("\n")[1] == "a: y | b: z"
