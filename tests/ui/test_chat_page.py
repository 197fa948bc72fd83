"""The chat page in a real browser against the real app (one server for the module, emptied
between tests) with a scripted model: streaming, citations, the queue, stop, errors, history."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from documents import pdf_bytes
from harness import Served, serve, wait_for_partial_answer
from playwright.sync_api import expect

from kbchat.errors import BackendError
from kbchat.testing.fakes import ScriptedChatModel
from kbchat.types import Message

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WARRANTY = (
    "The warranty lasts two years from the date of purchase. Keep the receipt as proof of "
    "purchase. Repairs under warranty are free of charge. The warranty does not cover damage "
    "from scale."
)
ANSWER = (
    "The warranty lasts **two years** from the date of purchase [1]. Keep the receipt as proof "
    "of purchase [1]. Repairs under warranty are free of charge [1]. The warranty does not "
    "cover damage from scale [1]."
)
SHOWN = (
    "The warranty lasts two years from the date of purchase 1. Keep the receipt as proof of "
    "purchase 1. Repairs under warranty are free of charge 1. The warranty does not cover "
    "damage from scale 1."
)
PLAIN = "Hello! I am a plain chat model."
MARKUP = "<img src=x onerror=alert(1)> is shown as text; `code` too.\n\n- one\n- two"
MANUAL = [
    "Unpacking. Remove the kettle from its box.",
    "Cleaning. Descale the kettle every month.",
    f"Warranty. {WARRANTY}",
]


class ChatPageModel(ScriptedChatModel):
    """Answers by the question's words: "warranty" and "returns" from the documents, "slow"
    200 words at 0.15 s each, "boom" fails after a word, "markup" with HTML, "hold" only once
    ``release`` is set; anything else is plain chat. Words come every ``delay_s`` seconds."""

    def __init__(self, name: str) -> None:
        super().__init__([PLAIN], name=name)
        self.delay_s = 0.0
        self.release = threading.Event()
        self.stopped = threading.Event()
        self.lock = threading.Lock()

    def reply_for(self, question: str) -> str:
        if "warranty" in question:
            return ANSWER
        if "returns" in question:
            return "Returns are accepted within 30 days [1]."
        if "slow" in question:
            return " ".join(["word"] * 200)
        return MARKUP if "markup" in question else PLAIN

    def stream(self, messages: Sequence[Message], **params: Any) -> Any:
        question = next((m.content for m in reversed(messages) if m.role == "user"), "")
        with self.lock:
            self.replies = [self.reply_for(question)]
            words = super().stream(messages, **params)
        delay = 0.15 if "slow" in question else self.delay_s
        return self._paced(words, delay, question, params.get("cancel"))

    def _paced(
        self, words: Iterator[Any], delay: float, question: str, cancel: threading.Event | None
    ) -> Iterator[Any]:
        if "hold" in question:
            self.release.wait(30)
        finished = False
        try:
            for number, delta in enumerate(words):
                time.sleep(delay)
                if "boom" in question and number == 1:
                    raise BackendError("the model server crashed")
                yield delta
            finished = cancel is None or not cancel.is_set()
        finally:
            if not finished:
                self.stopped.set()


@pytest.fixture(scope="module")
def module_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, Any]]:
    models = {
        "qwen2.5-0.5b": {"parallel": 1},
        "remote-large": {"backend": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "x"},
    }
    default, remote = ChatPageModel("scripted"), ChatPageModel("remote-scripted")
    with serve(tmp_path_factory.mktemp("chat-page"), default, models=models) as served:
        served.services.models.add("remote-large", remote)
        yield served, {"default": default, "remote": remote}


@pytest.fixture
def app(module_app: tuple[Served, Any]) -> Iterator[Served]:
    served, models = module_app
    yield served
    for model in models.values():
        model.delay_s = 0.0
        model.release.set()
        model.stopped.clear()
    served.reset()


@pytest.fixture
def model(module_app: tuple[Served, Any]) -> ChatPageModel:
    """The default model."""
    found: ChatPageModel = module_app[1]["default"]
    found.release.clear()
    return found


def add_kb(app: Served, name: str, files: dict[str, bytes], tmp_path: Path) -> None:
    folder = tmp_path / name
    folder.mkdir()
    for file, data in files.items():
        (folder / file).write_bytes(data)
    assert {o.status for o in app.services.library.ensure(name).add([folder])} == {"indexed"}


def pick_kb(page: Any, name: str) -> None:
    page.click("#kb-summary")
    page.check(f"#kb-picker input[value='{name}']")
    page.click("#messages")


def ask(page: Any, question: str) -> None:
    page.fill("#question", question)
    page.press("#question", "Enter")


def test_kb_chat_streams_the_answer_and_opens_citations(
    page: Any, app: Served, module_app: tuple[Served, Any], tmp_path: Path
) -> None:
    add_kb(app, "manuals", {"warranty.pdf": pdf_bytes(MANUAL)}, tmp_path)
    module_app[1]["remote"].delay_s = 0.08
    page.goto(app.url)
    pick_kb(page, "manuals")
    page.select_option("#model-select", "remote-large")
    page.fill("#top-k", "3")
    page.fill("#threshold", "0.1")
    expect(page.locator("#mode-hint")).to_contain_text("Answers come from: manuals")
    with page.expect_request("**/api/chat") as sent:
        ask(page, "How long is the warranty?")
    body = sent.value.post_data_json
    assert body["kbs"] == ["manuals"] and body["stream"] is True
    assert body["model"] == "remote-large" and body["top_k"] == 3 and body["threshold"] == 0.1
    assert "conversation_id" not in body

    answer = page.locator(".msg.assistant").last
    expect(page.locator(".msg.user").last).to_have_text("How long is the warranty?")
    expect(page.locator("#stop")).to_be_visible()
    wait_for_partial_answer(page, "The warranty")
    expect(answer).not_to_have_class("msg assistant streaming")
    expect(answer.locator(".answer-body")).to_have_text(SHOWN)
    expect(answer.locator(".answer-body strong")).to_have_text("two years")
    expect(page.locator("#send")).to_be_visible()
    expect(answer.locator(".meta")).to_contain_text("remote-scripted")
    expect(answer.locator(".meta")).to_contain_text("first token")

    source = answer.locator(".source[data-marker='1']")
    expect(source).not_to_have_attribute("open", "")
    answer.locator("button.cite[data-marker='1']").first.click()
    expect(source).to_have_attribute("open", "")
    expect(source).to_contain_text("warranty.pdf")
    expect(source).to_contain_text("page 3")
    expect(source.locator(".quote")).to_contain_text("two years from the date of purchase")

    (only,) = app.state.conversations.list_conversations(None)
    expect(page.locator(f"#conv-list li[data-id='{only.id}']")).to_contain_text(
        "How long is the warranty?"
    )
    assert page.url.endswith(f"#/chat/{only.id}")

    with page.expect_request("**/api/chat") as sent:
        ask(page, "And the warranty after a repair?")
    expect(page.locator(".msg.assistant")).to_have_count(2)
    assert sent.value.post_data_json["conversation_id"] == only.id


def test_plain_chat_sends_no_knowledge_base(page: Any, app: Served) -> None:
    app.services.library.ensure("manuals")
    app.services.library.ensure("faq")  # two, neither the sample: none is preselected
    page.goto(app.url)
    expect(page.locator("#kb-summary")).to_have_text("None (plain chat)")
    expect(page.locator("#mode-hint")).to_contain_text("Plain chat with the model")
    expect(page.locator("#top-k")).to_be_disabled()
    with page.expect_request("**/api/chat") as sent:
        ask(page, "Hi there")
    answer = page.locator(".msg.assistant").last
    expect(answer.locator(".answer-body")).to_have_text(PLAIN)
    expect(answer.locator(".sources")).to_be_hidden()
    body = sent.value.post_data_json
    assert body["kbs"] == [] and "top_k" not in body and body["model"] == "qwen2.5-0.5b"
    # Nothing was searched: no "not found in the knowledge base", but what it rests on.
    rests_on = (
        "No knowledge base selected: this answer is the model's own knowledge, not from "
        "your documents. Verify it."
    )
    expect(answer.locator(".notes")).to_have_text(rests_on)
    expect(page).to_have_url(re.compile(r"#/chat/.+"))
    page.reload()  # the conversation again, from the server
    expect(page.locator(".msg.assistant .answer-body")).to_have_text(PLAIN)
    expect(page.locator(".msg.assistant .notes")).to_have_text(rests_on)


def test_a_first_visit_preselects_the_only_knowledge_base_until_a_choice_is_made(
    page: Any, app: Served
) -> None:
    app.services.library.ensure("manuals")
    page.goto(app.url)
    expect(page.locator("#kb-summary")).to_have_text("manuals")
    expect(page.locator("#mode-hint")).to_contain_text("Answers come from: manuals")
    with page.expect_request("**/api/chat") as sent:
        ask(page, "Hi there")
    assert sent.value.post_data_json["kbs"] == ["manuals"]
    expect(page.locator(".msg.assistant .answer-body")).to_contain_text("nothing relevant")
    expect(page.locator("#send")).to_be_visible()
    page.click("#kb-summary")
    page.uncheck("#kb-picker input[value='manuals']")  # the visitor's choice: kept
    page.reload()
    expect(page.locator("#kb-summary")).to_have_text("None (plain chat)")


def test_a_first_visit_preselects_the_sample_knowledge_base(page: Any, app: Served) -> None:
    app.services.library.ensure("manuals")
    app.services.library.ensure("kbchat-docs")
    page.goto(app.url)
    expect(page.locator("#kb-summary")).to_have_text("kbchat-docs")


def test_a_queued_answer_shows_its_place_in_line(
    page: Any, app: Served, model: ChatPageModel
) -> None:
    holder = threading.Thread(
        target=httpx.post,
        args=(f"{app.url}/api/chat",),
        kwargs={"json": {"question": "hold the only slot", "stream": False}, "timeout": 60},
    )
    holder.start()
    page.goto(app.url)
    ask(page, "Wait in the queue")
    answer = page.locator(".msg.assistant").last
    expect(answer.locator(".thinking")).to_contain_text("Waiting for the model: number 1 in line")
    model.release.set()
    expect(answer.locator(".answer-body")).to_have_text(PLAIN)
    expect(answer.locator(".thinking")).to_have_count(0)
    holder.join(30)


def test_stop_aborts_generation_and_the_server_sees_it(
    page: Any, app: Served, model: ChatPageModel
) -> None:
    model.release.set()
    page.goto(app.url)
    ask(page, "Tell me something slow")
    answer = page.locator(".msg.assistant").last
    expect(answer.locator(".answer-body")).to_contain_text("word")
    expect(answer.locator(".thinking")).to_have_count(0)
    page.click("#stop")
    expect(answer.locator(".note.warn")).to_have_text("Stopped.")
    expect(page.locator("#send")).to_be_visible()
    expect(page.locator("#stop")).to_be_hidden()
    expect(answer).not_to_have_class("msg assistant streaming")
    assert model.stopped.wait(10), "the model kept generating after Stop"
    words = answer.locator(".answer-body").inner_text().split()
    assert 0 < len(words) < 200


def test_error_event_mid_stream_shows_the_server_message(page: Any, app: Served) -> None:
    page.goto(app.url)
    ask(page, "boom")
    answer = page.locator(".msg.assistant").last
    expect(answer.locator(".note.error")).to_have_text("the model server crashed")
    expect(page.locator("#send")).to_be_visible()


def test_history_opens_and_deletes_conversations(page: Any, app: Served, tmp_path: Path) -> None:
    add_kb(app, "faq", {"faq.txt": b"Returns are accepted within 30 days."}, tmp_path)
    app.services.library.ensure("manuals")
    with httpx.Client(base_url=app.url, timeout=30) as client:
        old = client.post("/api/chat", json={"question": "Hello there", "stream": False})
        returns = client.post(
            "/api/chat",
            json={
                "question": "Are returns accepted within 30 days?",
                "kbs": ["faq"],
                "stream": False,
            },
        )
        returns_id = returns.json()["conversation_id"]
        renamed = client.patch(f"/api/conversations/{returns_id}", json={"title": "Returns"})
        assert renamed.status_code == 200 and old.status_code == 200
    page.goto(app.url)
    items = page.locator("#conv-list li")
    expect(items).to_have_count(2)
    expect(items.first).to_contain_text("Returns")
    expect(items.first).to_contain_text("faq")

    items.first.locator("a").click()
    expect(page.locator(".msg.user")).to_have_text(["Are returns accepted within 30 days?"])
    expect(page.locator("#kb-summary")).to_have_text("faq")
    page.locator(".msg.assistant button.cite[data-marker='1']").click()
    expect(page.locator(".msg.assistant .source[data-marker='1']")).to_contain_text("faq.txt")
    expect(page.locator("#conv-list li.active")).to_contain_text("Returns")

    delete = page.locator(f"#conv-list li[data-id='{returns_id}'] .conv-delete")
    delete.click()
    expect(delete).to_have_text("Really delete?")
    delete.click()
    expect(items).to_have_count(1)
    remaining = app.state.conversations.list_conversations(None)
    assert [c.id for c in remaining] == [old.json()["conversation_id"]]
    expect(page.locator("#chat-empty")).to_be_visible()
    assert page.url.endswith("#/chat")

    page.click("#new-chat")
    expect(page.locator(".msg")).to_have_count(0)


def test_opening_a_missing_conversation_shows_the_error(page: Any, app: Served) -> None:
    page.goto(f"{app.url}/#/chat/nope")
    expect(page.locator(".toast.error")).to_contain_text("no conversation with id 'nope'")
    expect(page.locator("#chat-empty")).to_be_visible()


def test_answers_render_markdown_but_never_markup(page: Any, app: Served) -> None:
    page.goto(app.url)
    ask(page, "show me markup")
    body = page.locator(".msg.assistant .answer-body").last
    expect(body.locator("li")).to_have_text(["one", "two"])
    expect(body.locator("code")).to_have_text("code")
    expect(body).to_contain_text("<img src=x onerror=alert(1)> is shown as text")
    expect(body.locator("img")).to_have_count(0)
