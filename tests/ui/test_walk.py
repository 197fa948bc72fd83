"""The walk of issue 15's "done means": one user, the real app (create_app over a socket) with
a scripted chat model and the hash embedder, every step through the page and checked on screen.

Upload a docx, a pdf and a Chinese txt and watch each file reach "indexed"; ask in Chinese and
in English; open a citation in the pdf viewer at its page with the passage highlighted;
regenerate; rate with a comment; rename (a blank name is refused) and export the conversation
as Markdown and JSON; change a setting; reload and find all of it again.
"""

from __future__ import annotations

import json
import re
import threading
import tomllib
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from documents import docx_bytes, pdf_bytes
from harness import INDEXING, Served, expect_rated, rate, screenshot, serve
from playwright.sync_api import expect

from kbchat.testing.fakes import ScriptedChatModel
from kbchat.types import Message

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MANUAL = [
    "Unpacking. Remove the K3 kettle from its box and keep the receipt.",
    "Cleaning. Descale the kettle every month with white vinegar.",
    "Warranty. The K3 kettle has a two year warranty from the date of purchase.",
]
CHINESE = "K3 水壶保修两年，自购买之日起计算。保修期内免费维修。"
TEA = ["Brew green tea at 80 degrees for two minutes.", "Black tea takes boiling water."]
FILES = [
    {
        "name": "tea-guide.docx",
        "mimeType": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "buffer": docx_bytes("Tea guide", TEA),
    },
    {"name": "k3-manual.pdf", "mimeType": "application/pdf", "buffer": pdf_bytes(MANUAL)},
    {"name": "保修说明.txt", "mimeType": "text/plain", "buffer": CHINESE.encode()},
]
ASK_ZH = "K3 水壶的保修期有多长？"
ASK_EN = "How long is the warranty of the K3 kettle?"
REPLIES = {
    ASK_ZH: ["K3 水壶保修两年，自购买之日起计算 [1]。"],
    ASK_EN: [
        "The K3 kettle has a two year warranty from the date of purchase [1].",
        "Two years: the K3 kettle has a two year warranty from the date of purchase [1].",
    ],
}


class ByQuestionModel(ScriptedChatModel):
    """The scripted model, answering each question with its own replies in turn (the last
    repeats): the page's two conversations and a regeneration, in any order."""

    def __init__(self, replies: dict[str, list[str]]) -> None:
        super().__init__(["I cannot tell."], name="scripted")
        self.by_question = replies
        self.asked: Counter[str] = Counter()
        self.lock = threading.Lock()

    def stream(self, messages: Sequence[Message], **params: Any) -> Any:
        prompt = messages[-1].content if messages else ""
        with self.lock:
            for question, replies in self.by_question.items():
                if question in prompt:
                    turn = self.asked[question]
                    self.asked[question] += 1
                    self.replies = [replies[min(turn, len(replies) - 1)]]
                    break
            else:
                self.replies = ["I cannot tell."]
            return super().stream(messages, **params)


@pytest.fixture
def walk_app(kbchat_home: Path) -> Iterator[Served]:
    with serve(kbchat_home, ByQuestionModel(REPLIES)) as served:
        yield served


def ask(page: Any, question: str) -> Any:
    page.fill("#question", question)
    page.press("#question", "Enter")
    answer = page.locator(".msg.assistant").last
    expect(answer).not_to_have_class("msg assistant streaming")
    return answer


def conversation_item(page: Any, title: str) -> Any:
    item = page.locator("#conv-list li", has_text=title)
    item.hover()
    return item


def test_a_user_walks_the_page_and_finds_everything_after_a_reload(
    page: Any, walk_app: Served, kbchat_home: Path, tmp_path: Path
) -> None:
    url = walk_app.url
    INDEXING.clear()  # the test lets the indexer go once it has seen every file waiting
    page.goto(f"{url}/#/kbs")
    page.fill("#kb-name", "manuals")
    page.fill("#kb-description", "Kettle manual, warranty and a tea guide")
    page.click("#kb-create-submit")
    expect(page.locator("#kb-title")).to_have_text("manuals")

    # 1. three files, each followed to "indexed"
    page.set_input_files("#file-input", FILES)
    job = page.locator("#jobs .job").first
    per_file = job.locator(".job-files li")
    expect(per_file).to_have_count(3)
    expect(job).to_contain_text("Upload: 3 files")
    expect(
        job.locator(".job-files li:is([data-status='waiting'], [data-status='running'])")
    ).to_have_count(3)
    expect(job.locator(".job-label")).to_have_text(
        re.compile(r"Indexing: 0 of 3 files|Waiting for the indexer")
    )
    screenshot(page, "walk-1-upload-waiting")
    INDEXING.set()
    expect(job).to_have_attribute("data-status", "done")
    expect(job.locator(".job-label")).to_have_text(
        "Done: 3 indexed, 0 failed, 0 skipped, 0 removed"
    )
    expect(per_file.locator(".badge")).to_have_text(["indexed"] * 3)
    assert sorted(per_file.evaluate_all("rows => rows.map((row) => row.dataset.file)")) == sorted(
        f["name"] for f in FILES
    )
    expect(page.locator("#file-rows tr .badge")).to_have_text(["indexed"] * 3)
    expect(page.locator("#kb-list li[data-name='manuals']")).to_contain_text("3 files")
    screenshot(page, "walk-2-files-indexed")

    # 2. a question in Chinese, answered from the Chinese text file
    page.click(".tabs a[data-view='chat']")
    page.click("#kb-summary")
    page.check("#kb-picker input[value='manuals']")
    page.click("#messages")
    answer = ask(page, ASK_ZH)
    expect(answer.locator(".answer-body")).to_contain_text("K3 水壶保修两年")
    answer.locator("button.cite").first.click()
    expect(answer.locator(".source[open] .source-file")).to_have_text("保修说明.txt")
    screenshot(page, "walk-3-chinese-answer")

    # 3. a question in English in a new conversation; its citation opens the pdf at page 3
    page.click("#new-chat")
    answer = ask(page, ASK_EN)
    expect(answer.locator(".answer-body")).to_have_text(
        "The K3 kettle has a two year warranty from the date of purchase 1."
    )
    answer.locator("button.cite").first.click()
    source = answer.locator(".source[open]").first
    expect(source.locator(".source-file")).to_have_text("k3-manual.pdf")
    expect(source.locator(".source-where")).to_contain_text("page 3")
    source.locator(".source-open").click()
    viewer = page.locator("#source-viewer")
    expect(viewer.locator("#viewer-title")).to_have_text("k3-manual.pdf")
    expect(viewer.locator("#pdf-counter")).to_have_text("page 3 of 3")
    cited_page = viewer.locator(".pdf-page[data-page='3']")
    expect(cited_page).to_have_attribute("data-highlighted", "1")
    expect(cited_page.locator("mark.cited-passage")).to_contain_text("two year warranty")
    screenshot(page, "walk-4-pdf-citation")
    viewer.locator("#viewer-close").click()
    expect(viewer).to_be_hidden()

    # 4. regenerate, then rate the new answer with a comment
    answer.locator(".action-regenerate").click()
    answer = page.locator(".msg.assistant").last
    expect(answer).not_to_have_class("msg assistant streaming")
    expect(answer.locator(".answer-body")).to_contain_text("Two years: the K3 kettle")
    expect(page.locator(".msg.assistant")).to_have_count(1)
    rate(answer, "up", "Clear, with the page to check it")

    # 5. rename: a blank name is refused with a message, a real one is kept
    conversation_item(page, ASK_EN).locator(".conv-rename").click()
    page.fill(".conv-title-input", "   ")
    page.press(".conv-title-input", "Enter")
    expect(page.locator(".toast.error")).to_contain_text("The title must not be empty")
    conversation_item(page, ASK_EN).locator(".conv-rename").click()
    page.fill(".conv-title-input", "K3 warranty")
    page.press(".conv-title-input", "Enter")
    expect(page.locator("#conv-list li.active .conv-title")).to_have_text("K3 warranty")
    screenshot(page, "walk-5-rated-and-renamed")

    # 6. export as Markdown and as JSON
    renamed = conversation_item(page, "K3 warranty")
    renamed.locator(".conv-export > summary").click()
    with page.expect_download() as markdown_download:
        renamed.locator(".export-md").click()
    markdown = tmp_path / "walk.md"
    markdown_download.value.save_as(markdown)
    text = markdown.read_text(encoding="utf-8")
    assert text.startswith("# K3 warranty\n")
    assert ASK_EN in text and "Two years: the K3 kettle" in text and "k3-manual.pdf" in text
    renamed = conversation_item(page, "K3 warranty")
    if not renamed.locator(".export-json").is_visible():
        renamed.locator(".conv-export > summary").click()
    with page.expect_download() as json_download:
        renamed.locator(".export-json").click()
    exported_path = tmp_path / "walk.json"
    json_download.value.save_as(exported_path)
    exported = json.loads(exported_path.read_text(encoding="utf-8"))
    assert exported["title"] == "K3 warranty"
    question, reply = exported["messages"]
    assert question["content"] == ASK_EN
    assert reply["content"].startswith("Two years: the K3 kettle")
    assert reply["feedback"]["verdict"] == "up"
    assert reply["citations"][0]["file"] == "k3-manual.pdf" and reply["citations"][0]["page"] == 3

    # 7. a setting changed in the settings view
    page.click(".tabs a[data-view='settings']")
    form = page.locator("#settings-form")
    form.locator("input[name='top_k']").fill("7")
    form.locator("#settings-save").click()
    expect(form.locator(".ok-text")).to_have_text("Settings saved and in effect.")
    saved = tomllib.loads((kbchat_home / "kbchat.toml").read_text(encoding="utf-8"))
    assert saved["chat"]["top_k"] == 7
    screenshot(page, "walk-6-settings")

    # 8. after a reload: the conversations, the new name, the rating, the setting, the files
    page.reload()
    expect(page.locator("#settings-form input[name='top_k']")).to_have_value("7")
    expect(page.locator("#answering-card [data-setting='chat.top_k']")).to_contain_text("7")
    page.click(".tabs a[data-view='chat']")
    titles = page.locator("#conv-list .conv-title")
    expect(titles).to_have_text(["K3 warranty", ASK_ZH])
    page.locator("#conv-list li", has_text="K3 warranty").locator("a").first.click()
    answer = page.locator(".msg.assistant").last
    expect(page.locator(".msg.user .msg-content")).to_have_text([ASK_EN])
    expect(answer.locator(".answer-body")).to_contain_text("Two years: the K3 kettle")
    expect_rated(answer, "up", "Clear, with the page to check it")
    screenshot(page, "walk-7-after-reload-chat")
    page.locator("#conv-list li", has_text=ASK_ZH).locator("a").first.click()
    expect(page.locator(".msg.assistant .answer-body")).to_contain_text("K3 水壶保修两年")
    page.click(".tabs a[data-view='kbs']")
    page.locator("#kb-list li[data-name='manuals']").click()
    rows = page.locator("#file-rows tr")
    expect(rows).to_have_count(3)
    names = sorted(rows.evaluate_all("rows => rows.map((row) => row.dataset.name)"))
    assert names == sorted(f["name"] for f in FILES)
    expect(page.locator("#file-rows tr .badge")).to_have_text(["indexed"] * 3)
    screenshot(page, "walk-8-after-reload-files")
