"""Settings, API keys, language and narrow layouts of the web page, in a real browser."""

from __future__ import annotations

from typing import Any

import pytest
from harness import open_page
from playwright.sync_api import expect

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_settings_show_models_embedder_policy_and_doctor(page: Any, fake_server: Any) -> None:
    page.goto(f"{fake_server.url}/#/settings")
    models = page.locator("#models-card tbody tr")
    expect(models).to_have_count(2)
    expect(models.first).to_contain_text("qwen2.5-0.5b")
    expect(models.first).to_contain_text("default")
    expect(page.locator("#embedder-card")).to_contain_text("e5")
    policy = page.locator("#answering-card [data-setting='chat.no_hit']")
    expect(policy).to_contain_text("refuse")
    expect(policy).to_contain_text("Say that the documents do not contain the answer.")
    expect(page.locator("#doctor-summary")).to_have_text("1 required check(s) failed.")
    expect(page.locator("#doctor-checks .check-item.bad")).to_contain_text("database is locked")
    expect(page.locator("#doctor-checks .check-item.optional")).to_contain_text("optional")
    expect(page.locator("#doctor-checks .check-item.ok")).to_have_count(1)


def test_language_follows_the_browser_and_the_switch_is_remembered(
    browser: Any, fake_server: Any, fake_state: Any
) -> None:
    fake_state.add_kb("manuals")
    context, page, errors = open_page(browser, locale="zh-CN")
    page.goto(fake_server.url)
    expect(page.locator(".tabs a[data-view='chat']")).to_have_text("对话")
    expect(page.locator("#send")).to_have_text("发送")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    page.select_option("#lang-select", "en")
    expect(page.locator(".tabs a[data-view='kbs']")).to_have_text("Knowledge bases")
    expect(page.locator("#send")).to_have_text("Send")
    page.reload()
    expect(page.locator("#send")).to_have_text("Send")
    expect(page.locator("#lang-select")).to_have_value("en")
    context.close()
    assert errors == []


def test_every_interface_text_exists_in_both_languages(page: Any, fake_server: Any) -> None:
    page.goto(fake_server.url)
    keys = page.evaluate("""async () => {
        const { STRINGS } = await import('/static/i18n.js');
        return [Object.keys(STRINGS.en).sort(), Object.keys(STRINGS.zh).sort()];
    }""")
    assert keys[0] == keys[1]
    assert len(keys[0]) > 100


def test_api_key_is_asked_for_remembered_and_sent(
    browser: Any, fake_server: Any, fake_state: Any
) -> None:
    fake_state.api_key = "s3cret"
    fake_state.add_kb("manuals")
    context, page, errors = open_page(browser)
    page.goto(f"{fake_server.url}/#/kbs")
    dialog = page.locator("#key-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#key-error")).to_be_hidden()
    page.fill("#key-input", "wrong")
    page.click("#key-submit")
    expect(page.locator("#key-error")).to_have_text(
        "The server refused the key: a valid API key is required"
    )
    page.fill("#key-input", "s3cret")
    page.click("#key-submit")
    expect(dialog).to_be_hidden()
    expect(page.locator("#kb-list li[data-name='manuals']")).to_be_visible()
    assert page.evaluate("localStorage.getItem('kbchat.apiKey')") == "s3cret"

    page.reload()
    expect(page.locator("#kb-list li[data-name='manuals']")).to_be_visible()
    expect(dialog).to_be_hidden()
    page.click("#forget-key")
    expect(dialog).to_be_visible()
    page.click("#key-cancel")
    expect(page.locator("#kb-list")).to_contain_text("a valid API key is required")
    context.close()
    assert errors == []


@pytest.mark.parametrize("view", ["#/chat", "#/kbs/manuals", "#/settings"])
def test_narrow_screens_do_not_scroll_sideways(
    browser: Any, fake_server: Any, fake_state: Any, view: str
) -> None:
    fake_state.add_kb("manuals", "Device manuals with a rather long description", {"a.pdf": 3})
    context, page, errors = open_page(browser, width=375, height=740)
    page.goto(f"{fake_server.url}/{view}")
    expect(page.locator("#view > *").first).to_be_visible()
    page.wait_for_load_state("networkidle")
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
    if view == "#/chat":
        expect(page.locator("#conv-panel")).to_be_hidden()
        page.click("#history-toggle")
        expect(page.locator("#conv-panel")).to_be_visible()
    context.close()
    assert errors == []
