"""The chat page in a real browser against the fake API: streaming, citations, stop, history."""

from __future__ import annotations

import time
from typing import Any

import pytest
from harness import wait_for_partial_answer
from playwright.sync_api import expect

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def wait_until(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def pick_kb(page: Any, name: str) -> None:
    page.click("#kb-summary")
    page.check(f"#kb-picker input[value='{name}']")
    page.click("#messages")


def ask(page: Any, question: str) -> None:
    page.fill("#question", question)
    page.press("#question", "Enter")


def test_kb_chat_streams_the_answer_and_opens_citations(
    page: Any, fake_server: Any, fake_state: Any
) -> None:
    fake_state.add_kb("manuals", files={"warranty.pdf": 12})
    fake_state.delta_delay_s = 0.08
    page.goto(fake_server.url)
    pick_kb(page, "manuals")
    page.select_option("#model-select", "remote-large")
    page.fill("#top-k", "3")
    page.fill("#threshold", "0.4")
    expect(page.locator("#mode-hint")).to_contain_text("Answers come from: manuals")
    ask(page, "How long is the warranty?")

    answer = page.locator(".msg.assistant").last
    expect(page.locator(".msg.user").last).to_have_text("How long is the warranty?")
    expect(page.locator("#stop")).to_be_visible()
    wait_for_partial_answer(page, "The warranty")
    expect(answer).not_to_have_class("msg assistant streaming", timeout=10_000)
    expect(answer.locator(".answer-body")).to_have_text(
        "The warranty lasts two years 1. Batteries are covered for six months 2."
    )
    expect(answer.locator(".answer-body strong")).to_have_text("two years")
    expect(page.locator("#send")).to_be_visible()
    expect(answer.locator(".meta")).to_contain_text("first token 0.12 s")

    source = answer.locator(".source[data-marker='1']")
    expect(source).not_to_have_attribute("open", "")
    answer.locator("button.cite[data-marker='1']").click()
    expect(source).to_have_attribute("open", "")
    expect(source).to_contain_text("warranty.pdf")
    expect(source).to_contain_text("page 3")
    expect(source.locator(".quote")).to_have_text("covered for two years from the date of purchase")

    sent = fake_state.chat_requests[-1]
    assert sent["kbs"] == ["manuals"] and sent["stream"] is True
    assert sent["model"] == "remote-large" and sent["top_k"] == 3 and sent["threshold"] == 0.4
    assert "conversation_id" not in sent
    conversation_id = next(iter(fake_state.conversations))
    expect(page.locator(f"#conv-list li[data-id='{conversation_id}']")).to_contain_text(
        "How long is the warranty?"
    )
    assert page.url.endswith(f"#/chat/{conversation_id}")

    ask(page, "And the battery?")
    expect(page.locator(".msg.assistant")).to_have_count(2)
    wait_until(lambda: len(fake_state.chat_requests) == 2)
    assert fake_state.chat_requests[-1]["conversation_id"] == conversation_id


def test_plain_chat_sends_no_knowledge_base(page: Any, fake_server: Any, fake_state: Any) -> None:
    fake_state.add_kb("manuals")
    page.goto(fake_server.url)
    expect(page.locator("#kb-summary")).to_have_text("None (plain chat)")
    expect(page.locator("#mode-hint")).to_contain_text("Plain chat with the model")
    expect(page.locator("#top-k")).to_be_disabled()
    ask(page, "Hi there")
    answer = page.locator(".msg.assistant").last
    expect(answer.locator(".answer-body")).to_have_text("Hello! I am a plain chat model.")
    expect(answer.locator(".sources")).to_be_hidden()
    sent = fake_state.chat_requests[-1]
    assert sent["kbs"] == [] and "top_k" not in sent and sent["model"] == "qwen2.5-0.5b"


def test_a_queued_answer_shows_its_place_in_line(
    page: Any, fake_server: Any, fake_state: Any
) -> None:
    page.goto(fake_server.url)
    ask(page, "Wait in the queue")
    answer = page.locator(".msg.assistant").last
    expect(answer.locator(".thinking")).to_have_text(
        "Waiting for the model: number 2 in line, about 40 s…"
    )
    fake_state.queue_turn.set()
    expect(answer.locator(".answer-body")).to_have_text("Hello! I am a plain chat model.")
    expect(answer.locator(".thinking")).to_have_count(0)


def test_stop_aborts_generation_and_the_server_sees_it(
    page: Any, fake_server: Any, fake_state: Any
) -> None:
    fake_state.first_delta_delay_s = 0.6
    page.goto(fake_server.url)
    ask(page, "Tell me something slow")
    answer = page.locator(".msg.assistant").last
    expect(answer.locator(".thinking")).to_have_text("Searching and thinking…")
    expect(answer.locator(".answer-body")).to_contain_text("word")
    expect(answer.locator(".thinking")).to_have_count(0)
    page.click("#stop")
    expect(answer.locator(".note.warn")).to_have_text("Stopped.")
    expect(page.locator("#send")).to_be_visible()
    expect(page.locator("#stop")).to_be_hidden()
    expect(answer).not_to_have_class("msg assistant streaming")
    wait_until(lambda: fake_state.cancelled_chats == 1)
    words = answer.locator(".answer-body").inner_text().split()
    assert 0 < len(words) < 200


def test_error_event_mid_stream_shows_the_server_message(
    page: Any, fake_server: Any, fake_state: Any
) -> None:
    page.goto(fake_server.url)
    ask(page, "boom")
    answer = page.locator(".msg.assistant").last
    expect(answer.locator(".note.error")).to_have_text("the model server crashed")
    expect(page.locator("#send")).to_be_visible()


def test_history_opens_and_deletes_conversations(
    page: Any, fake_server: Any, fake_state: Any
) -> None:
    fake_state.add_kb("manuals")
    fake_state.add_kb("faq")
    citation = {
        "marker": 1,
        "kb": "faq",
        "file": "faq.txt",
        "page": None,
        "score": 0.7,
        "text": "Returns are accepted within 30 days.",
        "quote": "within 30 days",
        "sheet": None,
        "slide": None,
    }
    for number, (title, kbs) in enumerate([("Returns policy", ["faq"]), ("Old chat", [])]):
        fake_state.conversations[f"conv{number}"] = {
            "id": f"conv{number}",
            "title": title,
            "kbs": kbs,
            "model": "qwen2.5-0.5b",
            "created_at": 1.0,
            "updated_at": 100.0 - number,
            "messages": [
                {"role": "user", "content": f"question {number}", "created_at": 1.0},
                {
                    "role": "assistant",
                    "content": f"answer {number} [1]",
                    "created_at": 2.0,
                    "citations": [citation] if kbs else [],
                },
            ],
        }
    page.goto(fake_server.url)
    items = page.locator("#conv-list li")
    expect(items).to_have_count(2)
    expect(items.first).to_contain_text("Returns policy")
    expect(items.first).to_contain_text("faq")

    items.first.locator("a").click()
    expect(page.locator(".msg.user")).to_have_text(["question 0"])
    expect(page.locator("#kb-summary")).to_have_text("faq")
    page.locator(".msg.assistant button.cite[data-marker='1']").click()
    expect(page.locator(".msg.assistant .source[data-marker='1']")).to_contain_text("faq.txt")
    expect(page.locator("#conv-list li.active")).to_contain_text("Returns policy")

    delete = page.locator("#conv-list li[data-id='conv0'] .conv-delete")
    delete.click()
    expect(delete).to_have_text("Really delete?")
    delete.click()
    expect(items).to_have_count(1)
    assert list(fake_state.conversations) == ["conv1"]
    expect(page.locator("#chat-empty")).to_be_visible()
    assert page.url.endswith("#/chat")

    page.click("#new-chat")
    expect(page.locator(".msg")).to_have_count(0)


def test_opening_a_missing_conversation_shows_the_error(
    page: Any, fake_server: Any, fake_state: Any
) -> None:
    page.goto(f"{fake_server.url}/#/chat/nope")
    expect(page.locator(".toast.error")).to_contain_text("no conversation 'nope'")
    expect(page.locator("#chat-empty")).to_be_visible()


def test_answers_render_markdown_but_never_markup(
    page: Any, fake_server: Any, fake_state: Any
) -> None:
    page.goto(fake_server.url)
    ask(page, "show me markup")
    body = page.locator(".msg.assistant .answer-body").last
    expect(body.locator("li")).to_have_text(["one", "two"])
    expect(body.locator("code")).to_have_text("code")
    expect(body).to_contain_text("<img src=x onerror=alert(1)> is shown as text")
    expect(body.locator("img")).to_have_count(0)
