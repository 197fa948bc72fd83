"""Answers and conversations in the page, against the real server with scripted models:
Markdown that cannot inject markup, copy, regenerate, edit and resend, ratings, and the
history's rename, search and export. Every change is checked again after a reload."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from harness import LiveServer, expect_rated, rate, screenshot
from playwright.sync_api import expect

from kbchat.app import Services, build
from kbchat.config import load_settings
from kbchat.store.conversations import ConversationStore
from kbchat.testing.fakes import ScriptedChatModel
from tests.server.support import NO_ANSWER_BAR

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HOSTILE = (
    "## Care table\n\n"
    "| part | how often |\n|---|---|\n| *filter* | monthly |\n| base | never wet |\n\n"
    "See [the maker](https://example.com/k3) or [this](javascript:window.pwned=1) "
    "or [that](data:text/html,<script>window.pwned=1</script>).\n\n"
    "<script>window.pwned = 1</script>\n\n"
    '<img src=x onerror="window.pwned=1"> and <a href="javascript:window.pwned=1">raw</a>\n\n'
    "`<b>code</b>` stays code."
)


TURNS = ".msg.user .msg-content, .msg.assistant .answer-body"
"""The questions and answers on screen, in order."""


def start(model: ScriptedChatModel, kb_text: bytes | None = None) -> tuple[Services, Any]:
    from kbchat.server.app import create_app

    settings = load_settings(embedder={"backend": "hash"}, chat=NO_ANSWER_BAR)
    services = build(settings)
    services.models.add(settings.default_model, model)
    if kb_text is not None:
        kb = services.library.ensure("manuals")
        folder = services.settings.home / "docs"
        folder.mkdir(parents=True)
        (folder / "kettle.txt").write_bytes(kb_text)
        kb.add([folder])
    return services, create_app(settings, services=services)


@pytest.fixture
def scripted() -> ScriptedChatModel:
    return ScriptedChatModel(
        ["first answer", "second answer", "third answer", "fourth answer"], name="scripted"
    )


@pytest.fixture
def live(scripted: ScriptedChatModel) -> Iterator[tuple[LiveServer, Services]]:
    services, app = start(scripted)
    with LiveServer(app) as server:
        yield server, services
    services.close()


def ask(page: Any, question: str) -> Any:
    page.fill("#question", question)
    page.press("#question", "Enter")
    answer = page.locator(".msg.assistant").last
    expect(answer).not_to_have_class("msg assistant streaming")
    return answer


def store(services: Services) -> ConversationStore:
    """The conversations as the server stores them (in the catalog's database)."""
    return ConversationStore(services.library.catalog.engine)


def stored(services: Services) -> list[tuple[str, str]]:
    """The turns of the only conversation."""
    (only,) = store(services).list_conversations(None)
    return [(m.role, m.content) for m in store(services).get(only.id, None).messages]


def test_markdown_renders_tables_links_and_headings_and_never_runs_markup(page: Any) -> None:
    services, app = start(ScriptedChatModel([HOSTILE], name="scripted"))
    dialogs: list[str] = []

    def refuse(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", refuse)
    with LiveServer(app) as server:
        page.goto(server.url)
        body = ask(page, "How do I care for the kettle?").locator(".answer-body")
        expect(body.locator("h4")).to_have_text("Care table")  # "##" sits below the page's
        expect(body.locator("table th")).to_have_text(["part", "how often"])
        expect(body.locator("table td em")).to_have_text("filter")
        link = body.locator("a[href='https://example.com/k3']")
        expect(link).to_have_attribute("rel", "noopener noreferrer nofollow")
        expect(link).to_have_attribute("target", "_blank")
        expect(body.locator("code")).to_have_text("<b>code</b>")
        expect(body).to_contain_text("<script>window.pwned = 1</script>")  # shown as text
        expect(body).to_contain_text('<img src=x onerror="window.pwned=1">')
        inert = body.evaluate(
            """(el) => ({
                scripts: el.querySelectorAll('script, img, iframe, object, b').length,
                handlers: [...el.querySelectorAll('*')].filter((n) =>
                    [...n.attributes].some((a) => a.name.startsWith('on'))).length,
                hrefs: [...el.querySelectorAll('a[href]')].map((a) => a.getAttribute('href')),
                pwned: window.pwned === undefined ? null : window.pwned,
            })"""
        )
        assert inert == {
            "scripts": 0,
            "handlers": 0,
            "hrefs": ["https://example.com/k3"],
            "pwned": None,
        }
        expect(body).to_contain_text("[this](javascript:window.pwned=1)")  # not a link
        assert dialogs == []
        screenshot(page, "answer-markdown")
    services.close()


def test_citation_markers_still_open_their_sources(page: Any) -> None:
    reply = "| fact | source |\n|---|---|\n| two year warranty | [1] |\n\nDescale monthly [1]."
    services, app = start(
        ScriptedChatModel([reply], name="scripted"),
        b"The K3 kettle has a two year warranty. Descale it every month.",
    )
    with LiveServer(app) as server:
        page.goto(server.url)
        page.click("#kb-summary")
        page.check("#kb-picker input[value='manuals']")
        page.click("#messages")
        answer = ask(page, "What is the K3 warranty?")
        cites = answer.locator(".answer-body button.cite")
        expect(cites).to_have_count(2)
        expect(answer.locator(".answer-body td button.cite")).to_have_text("1")
        cites.last.click()
        expect(answer.locator(".source[data-marker='1']")).to_have_attribute("open", "")
    services.close()


def test_copy_rate_and_comment_persist(page: Any, live: tuple[LiveServer, Services]) -> None:
    server, services = live
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    page.goto(server.url)
    answer = ask(page, "Warranty?")
    expect(answer.locator(".answer-body")).to_have_text("first answer")

    answer.locator(".action-copy").click()
    expect(page.locator(".toast.ok")).to_contain_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == "first answer"

    rate(answer, "down", "It is three years")

    page.reload()
    answer = page.locator(".msg.assistant").last
    expect_rated(answer, "down", "It is three years")
    (item,) = store(services).rated_answers()
    feedback = item.answer.feedback
    assert feedback is not None
    assert (feedback.verdict, feedback.comment) == ("down", "It is three years")

    answer.locator(".action-down").click()  # the same thumb again takes the rating back
    expect(answer.locator(".action-down")).to_have_attribute("aria-pressed", "false")
    page.reload()
    expect(page.locator(".msg.assistant .action-down")).to_have_attribute("aria-pressed", "false")
    screenshot(page, "answer-actions")


def test_regenerate_and_edit_replace_turns_and_a_reload_shows_the_same(
    page: Any, live: tuple[LiveServer, Services], scripted: ScriptedChatModel
) -> None:
    server, services = live
    page.goto(server.url)
    ask(page, "Warranty?")
    ask(page, "Price?")
    expect(page.locator(".msg.assistant .action-regenerate:visible")).to_have_count(1)

    page.locator(".msg.assistant").last.locator(".action-regenerate").click()
    expect(page.locator(".msg.assistant").last).not_to_have_class("msg assistant streaming")
    expect(page.locator(TURNS)).to_have_text(
        ["Warranty?", "first answer", "Price?", "third answer"]
    )
    assert stored(services) == [
        ("user", "Warranty?"),
        ("assistant", "first answer"),
        ("user", "Price?"),
        ("assistant", "third answer"),
    ]

    first = page.locator(".msg.user").first
    first.hover()
    first.locator(".msg-edit").click()
    first.locator(".edit-question").fill("Warranty of the K3?")
    first.locator(".edit-send").click()
    expect(page.locator(".msg.assistant").last).not_to_have_class("msg assistant streaming")
    expect(page.locator(TURNS)).to_have_text(["Warranty of the K3?", "fourth answer"])
    sent = scripted.received[-1]
    assert [m.content for m in sent if m.role != "system"] == ["Warranty of the K3?"]

    page.reload()
    expect(page.locator(TURNS)).to_have_text(["Warranty of the K3?", "fourth answer"])
    assert stored(services) == [("user", "Warranty of the K3?"), ("assistant", "fourth answer")]


def test_history_rename_search_and_export(
    page: Any, live: tuple[LiveServer, Services], tmp_path: Any
) -> None:
    server, _ = live
    page.goto(server.url)
    ask(page, "Kettle warranty?")
    page.click("#new-chat")
    ask(page, "绿茶水温？")
    items = page.locator("#conv-list li")
    expect(items).to_have_count(2)

    kettle = page.locator("#conv-list li", has_text="Kettle warranty?")
    kettle.hover()
    kettle.locator(".conv-rename").click()
    page.fill(".conv-title-input", "K3 kettle")
    page.press(".conv-title-input", "Enter")
    expect(page.locator("#conv-list .conv-title")).to_contain_text(["K3 kettle"])

    kettle = page.locator("#conv-list li", has_text="K3 kettle")
    kettle.hover()
    kettle.locator(".conv-rename").click()
    page.fill(".conv-title-input", "   ")
    page.press(".conv-title-input", "Enter")
    expect(page.locator(".toast.error")).to_contain_text("title must not be empty")
    expect(page.locator("#conv-list li", has_text="K3 kettle")).to_have_count(1)

    page.fill("#conv-search", "绿茶")
    expect(items).to_have_count(1)
    expect(items.first).to_contain_text("绿茶水温")
    page.fill("#conv-search", "first answer")  # text of a message, not a title
    expect(items).to_have_count(1)
    expect(items.first).to_contain_text("K3 kettle")
    page.fill("#conv-search", "nothing like this")
    expect(page.locator("#conv-list .empty-small")).to_have_text("No conversation matches.")
    page.fill("#conv-search", "")
    expect(items).to_have_count(2)

    kettle = page.locator("#conv-list li", has_text="K3 kettle")
    kettle.hover()
    kettle.locator(".conv-export > summary").click()
    with page.expect_download() as markdown_download:
        kettle.locator(".export-md").click()
    markdown = tmp_path / "k3.md"
    markdown_download.value.save_as(markdown)
    assert markdown_download.value.suggested_filename.endswith(".md")
    text = markdown.read_text(encoding="utf-8")
    assert text.startswith("# K3 kettle\n") and "Kettle warranty?" in text
    assert "first answer" in text

    kettle.hover()
    if not kettle.locator(".export-json").is_visible():
        kettle.locator(".conv-export > summary").click()
    with page.expect_download() as json_download:
        kettle.locator(".export-json").click()
    path = tmp_path / "k3.json"
    json_download.value.save_as(path)
    exported = json.loads(path.read_text(encoding="utf-8"))
    assert exported["title"] == "K3 kettle"
    assert [m["content"] for m in exported["messages"]] == ["Kettle warranty?", "first answer"]
    screenshot(page, "history-tools")
