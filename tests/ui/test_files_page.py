"""Attaching files in the chat box and summaries in the file list, against the real server."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from harness import LiveServer, screenshot
from playwright.sync_api import expect

from kbchat.app import build
from kbchat.config import load_settings
from kbchat.testing.fakes import ScriptedChatModel

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MANUAL = b"The Z9 blender has a five year warranty. Clean the blades after each use."


@pytest.fixture
def model() -> ScriptedChatModel:
    return ScriptedChatModel(["The Z9 blender has a five year warranty [1]."], name="scripted")


@pytest.fixture
def live_app(model: ScriptedChatModel) -> Iterator[LiveServer]:
    from kbchat.server.app import create_app

    settings = load_settings(embedder={"backend": "hash"})
    services = build(settings)
    services.models.add(settings.default_model, model)
    with LiveServer(create_app(settings, services=services)) as server:
        yield server
    services.close()


def test_dropped_files_are_attached_and_answer_the_question(
    page: Any, live_app: LiveServer, model: ScriptedChatModel
) -> None:
    page.goto(live_app.url)
    expect(page.locator("#chat-empty")).to_be_visible()
    transfer = page.evaluate_handle("""() => {
        const data = new DataTransfer();
        data.items.add(new File([`The Z9 blender has a five year warranty.`], "manual.txt",
            { type: "text/plain" }));
        data.items.add(new File(["MZ"], "tool.exe", { type: "application/octet-stream" }));
        return data;
    }""")
    page.dispatch_event(".chat-main", "dragover", {"dataTransfer": transfer})
    expect(page.locator(".chat-main")).to_have_class("chat-main drop-over")
    page.dispatch_event(".chat-main", "drop", {"dataTransfer": transfer})
    chip = page.locator("#attachments li[data-name='manual.txt'] .badge")
    expect(chip).to_have_text("indexed")
    refused = page.locator("#attachments li[data-name='tool.exe']")
    expect(refused.locator(".badge")).to_have_text("skipped")
    expect(refused.locator(".reason")).to_contain_text("unsupported file type .exe")
    expect(page.locator("#mode-hint")).to_contain_text("manual.txt")
    assert "#/chat/" in page.url  # the files started a conversation
    expect(page.locator("#conv-list li").first).to_contain_text("manual.txt")

    page.fill("#question", "How long is the blender warranty?")
    page.press("#question", "Enter")
    answer = page.locator(".msg.assistant").last
    expect(answer.locator(".answer-body")).to_contain_text("five year warranty")
    expect(answer.locator("button.cite").first).to_be_visible()
    assert "five year warranty" in model.received[-1][-1].content
    screenshot(page, "chat-attached-files")

    page.reload()
    expect(page.locator("#attachments li[data-name='manual.txt'] .badge")).to_have_text("indexed")


def test_the_file_list_makes_and_shows_a_summary(page: Any, live_app: LiveServer) -> None:
    page.goto(live_app.url + "/#/kbs")
    page.fill("#kb-name", "manuals")
    page.click("#kb-create-submit")
    expect(page.locator("#kb-title")).to_have_text("manuals")
    page.set_input_files(
        "#file-input", [{"name": "manual.txt", "mimeType": "text/plain", "buffer": MANUAL}]
    )
    expect(page.locator("#jobs .job").first).to_have_attribute("data-status", "done")
    row = page.locator("#file-rows tr[data-name='manual.txt']")
    button = row.locator(".file-summarize")
    expect(button).to_have_text("Summarize")
    button.click()
    expect(row.locator(".file-summary")).to_have_text(
        "The Z9 blender has a five year warranty [1]."
    )
    expect(button).to_have_text("Summarize again")
    screenshot(page, "kb-file-summary")
    page.reload()
    expect(row.locator(".file-summary")).to_have_text(
        "The Z9 blender has a five year warranty [1]."
    )


class GatedModel(ScriptedChatModel):
    """Answers once ``gate`` opens (or its request is cancelled)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gate = threading.Event()

    def stream(self, messages: Any, **params: Any) -> Any:
        cancel = params.get("cancel")
        while not self.gate.wait(0.05) and not (cancel is not None and cancel.is_set()):
            pass
        return super().stream(messages, **params)


def test_summarize_all_follows_the_job_and_can_stop_it(page: Any) -> None:
    from kbchat.server.app import create_app

    settings = load_settings(embedder={"backend": "hash"})
    services = build(settings)
    model = GatedModel(["A blender manual."], name="scripted")
    services.models.add(settings.default_model, model)
    kb = services.library.ensure("manuals")
    docs = settings.home / "docs"
    docs.mkdir(parents=True)
    (docs / "manual.txt").write_bytes(MANUAL)
    (docs / "care.txt").write_bytes(b"Wash the jug by hand. Dry the base with a cloth.")
    kb.add([docs])
    try:
        with LiveServer(create_app(settings, services=services)) as server:
            page.goto(server.url + "/#/kbs/manuals")
            page.click("#kb-summarize")
            card = page.locator(".summary-job")
            expect(card).to_have_attribute("data-status", "running")
            expect(card.locator(".job-label")).to_contain_text("expected in all")
            page.click("#summary-stop")
            expect(card).to_have_attribute("data-status", "cancelled")
            expect(card.locator("li[data-name='care.txt']")).to_have_attribute(
                "data-status", "cancelled"
            )
            model.gate.set()
            page.click("#kb-summarize")
            expect(page.locator(".summary-job").first).to_have_attribute("data-status", "done")
            row = page.locator("#file-rows tr[data-name='manual.txt']")
            expect(row.locator(".file-summary")).to_have_text("A blender manual.")
            screenshot(page, "kb-summary-job")
    finally:
        services.close()
