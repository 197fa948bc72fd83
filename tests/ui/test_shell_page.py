"""Settings, API keys, language and narrow layouts of the web page, in a real browser against
the real app (one server for the module; the API-key test starts its own, with keys)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import Served, open_page, serve
from playwright.sync_api import expect

from kbchat.server.auth import hash_key

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODELS = {"qwen2.5-0.5b": {}, "broken": {"path": "/nowhere/broken-q4_k_m.gguf"}}
"""The default model, and one whose file is missing: the doctor's failing check."""


@pytest.fixture(scope="module")
def module_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serve(tmp_path_factory.mktemp("shell-page"), models=MODELS) as served:
        yield served


@pytest.fixture
def app(module_app: Served) -> Iterator[Served]:
    yield module_app
    module_app.reset()


def test_settings_show_models_embedder_policy_and_doctor(page: Any, app: Served) -> None:
    page.goto(f"{app.url}/#/settings")
    models = page.locator("#models-card tbody tr")
    expect(models).to_have_count(2)
    default = page.locator("#models-card tr[data-model='qwen2.5-0.5b']")
    expect(default.locator(".badge", has_text="default")).to_have_count(1)
    expect(default.locator(".model-default")).to_have_count(0)
    broken = page.locator("#models-card tr[data-model='broken']")
    expect(broken.locator(".badge", has_text="default")).to_have_count(0)
    expect(broken.locator(".model-default")).to_have_text("Make default")
    expect(page.locator("#embedder-card")).to_contain_text("gated-hash")
    policy = page.locator("#answering-card [data-setting='chat.no_hit']")
    expect(policy).to_contain_text("refuse")
    expect(policy).to_contain_text("Say that the documents do not contain the answer.")
    expect(page.locator("#doctor-summary")).to_have_text("1 required check(s) failed.")
    expect(page.locator("#doctor-checks .check-item.bad")).to_have_count(1)
    expect(page.locator("#doctor-checks .check-item.bad")).to_contain_text("broken")
    expect(page.locator("#doctor-checks .check-item.ok").first).to_be_visible()


def test_language_follows_the_browser_and_the_switch_is_remembered(
    browser: Any, app: Served
) -> None:
    app.services.library.ensure("manuals")
    context, page, errors = open_page(browser, locale="zh-CN")
    page.goto(app.url)
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


def test_every_interface_text_exists_in_both_languages(page: Any, app: Served) -> None:
    page.goto(app.url)
    keys = page.evaluate("""async () => {
        const { STRINGS } = await import('/static/i18n.js');
        return [Object.keys(STRINGS.en).sort(), Object.keys(STRINGS.zh).sort()];
    }""")
    assert keys[0] == keys[1]
    assert len(keys[0]) > 100


def test_api_key_is_asked_for_remembered_and_sent(browser: Any, tmp_path: Path) -> None:
    key = {"name": "admin", "sha256": hash_key("s3cret"), "permissions": {"*": "admin"}}
    with serve(tmp_path / "keyed", server={"auth": "on", "api_keys": [key]}) as app:
        app.services.library.ensure("manuals")
        context, page, errors = open_page(browser)
        page.goto(f"{app.url}/#/kbs")
        dialog = page.locator("#key-dialog")
        expect(dialog).to_be_visible()
        expect(page.locator("#key-error")).to_be_hidden()
        page.fill("#key-input", "wrong")
        page.click("#key-submit")
        expect(page.locator("#key-error")).to_contain_text("The server refused the key: ")
        refused = page.locator("#key-error").inner_text()
        assert "401" not in refused  # the server's own words, not a bare status
        page.fill("#key-input", "s3cret")
        with page.expect_request("**/api/kbs") as sent:
            page.click("#key-submit")
        assert sent.value.headers["authorization"] == "Bearer s3cret"
        expect(dialog).to_be_hidden()
        expect(page.locator("#kb-list li[data-name='manuals']")).to_be_visible()
        assert page.evaluate("localStorage.getItem('kbchat.apiKey')") == "s3cret"

        page.reload()
        expect(page.locator("#kb-list li[data-name='manuals']")).to_be_visible()
        expect(dialog).to_be_hidden()
        page.click("#forget-key")
        expect(dialog).to_be_visible()
        page.click("#key-cancel")
        expect(page.locator("#kb-list .form-error")).to_be_visible()
        context.close()
        assert errors == []


@pytest.mark.parametrize("view", ["#/chat", "#/kbs/manuals", "#/settings"])
def test_narrow_screens_do_not_scroll_sideways(
    browser: Any, app: Served, tmp_path: Path, view: str
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("The warranty lasts two years.", encoding="utf-8")
    kb = app.services.library.ensure(
        "manuals", description="Device manuals with a rather long description"
    )
    kb.add([folder])
    context, page, errors = open_page(browser, width=375, height=740)
    page.goto(f"{app.url}/{view}")
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
