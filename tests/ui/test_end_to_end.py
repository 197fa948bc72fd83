"""The web page against the real server (create_app) over a socket, with fake models injected."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from harness import LiveServer, screenshot, wait_for_partial_answer
from playwright.sync_api import expect

from kbchat.app import build
from kbchat.config import load_settings
from kbchat.testing.fakes import ScriptedChatModel
from tests.server.support import NO_ANSWER_BAR

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Long enough that the page shows it streaming after kbchat has checked its start.
REPLY = (
    "The K3 kettle has a two year warranty [1]. Descale it every month [1]. "
    "Use filtered water to keep the heating plate free of scale [1]. "
    "Never fill it above the max line [1]. Unplug it before cleaning the base [1]. "
    "Wipe the outside with a damp cloth [1]."
)
FILES = [
    {
        "name": "kettle.txt",
        "mimeType": "text/plain",
        "buffer": b"The K3 kettle has a two year warranty. Descale it every month. "
        b"Use filtered water to keep the heating plate free of scale. Never fill it above "
        b"the max line. Unplug it before cleaning the base. Wipe the outside with a damp cloth.",
    },
    {
        "name": "tea.md",
        "mimeType": "text/markdown",
        "buffer": "# Tea\n\nBrew green tea at 80 degrees. 绿茶用八十度的水冲泡。".encode(),
    },
]


class SlowScriptedModel(ScriptedChatModel):
    """The scripted model, one word every 80 ms, so the page can be seen streaming."""

    def stream(self, messages: Any, **params: Any) -> Iterator[Any]:
        for delta in super().stream(messages, **params):
            time.sleep(0.08)
            yield delta


@pytest.fixture
def live_app() -> Iterator[LiveServer]:
    from kbchat.server.app import create_app

    settings = load_settings(embedder={"backend": "hash"}, chat=NO_ANSWER_BAR)
    services = build(settings)
    services.models.add(settings.default_model, SlowScriptedModel([REPLY], name="scripted"))
    with LiveServer(create_app(settings, services=services)) as server:
        yield server
    services.close()


def test_create_upload_index_ask_and_open_a_citation(page: Any, live_app: LiveServer) -> None:
    page.goto(live_app.url)
    expect(page.locator("#chat-empty")).to_be_visible()
    page.click(".tabs a[data-view='kbs']")
    page.fill("#kb-name", "manuals")
    page.fill("#kb-description", "Kitchen appliance manuals")
    page.click("#kb-create-submit")
    expect(page.locator("#kb-title")).to_have_text("manuals")

    page.set_input_files("#file-input", FILES)
    job = page.locator("#jobs .job").first
    expect(job).to_have_attribute("data-status", "done", timeout=30_000)
    expect(job.locator(".job-label")).to_contain_text("Done: 2 indexed, 0 failed")
    expect(page.locator("#file-rows tr .badge")).to_have_text(["indexed", "indexed"])
    expect(page.locator("#kb-list li[data-name='manuals']")).to_contain_text("2 files")

    page.fill("#search-query", "kettle warranty")
    page.click("#search-submit")
    first_hit = page.locator("#search-results .hit").first
    expect(first_hit).to_contain_text("kettle.txt")
    score = float(first_hit.locator(".score-value").inner_text())
    assert 0.0 < score <= 1.0
    clipped = "(() => { const box = document.querySelector('.files'); "
    clipped += "return box.scrollHeight - box.clientHeight; })()"
    assert page.evaluate(clipped) <= 1, "the file table is squeezed by the page layout"
    screenshot(page, "e2e-knowledge-base")

    page.click(".tabs a[data-view='chat']")
    page.click("#kb-summary")
    page.check("#kb-picker input[value='manuals']")
    page.click("#messages")
    page.fill("#question", "How long is the K3 kettle warranty?")
    page.press("#question", "Enter")
    answer = page.locator(".msg.assistant").last
    wait_for_partial_answer(page, "K3 kettle")
    expect(page.locator("#stop")).to_be_visible()
    expect(answer).not_to_have_class("msg assistant streaming", timeout=20_000)
    expect(answer.locator(".answer-body")).to_contain_text("two year warranty")
    expect(answer.locator(".meta")).to_contain_text("scripted")

    cite = answer.locator("button.cite").first
    expect(cite).to_be_visible()
    marker = cite.get_attribute("data-marker")
    cite.click()
    source = answer.locator(f".source[data-marker='{marker}']")
    expect(source).to_have_attribute("open", "")
    expect(source.locator(".source-file")).to_have_text("kettle.txt")
    expect(source.locator(".quote")).to_contain_text("warranty")
    expect(page.locator("#conv-list li").first).to_contain_text("How long is the K3 kettle")
    screenshot(page, "e2e-chat")


def test_api_key_prompt_and_permission_errors_from_the_real_server(page: Any) -> None:
    from kbchat.server.app import create_app
    from kbchat.server.auth import hash_key

    key = {"name": "reader", "sha256": hash_key("read-only-key"), "permissions": {"*": "read"}}
    settings = load_settings(embedder={"backend": "hash"}, server={"auth": "on", "api_keys": [key]})
    services = build(settings)
    services.models.add(settings.default_model, ScriptedChatModel(["OK"]))
    with LiveServer(create_app(settings, services=services)) as server:
        page.goto(f"{server.url}/#/kbs")
        expect(page.locator("#key-dialog")).to_be_visible()
        page.fill("#key-input", "read-only-key")
        page.click("#key-submit")
        expect(page.locator("#key-dialog")).to_be_hidden()
        expect(page.locator("#kb-list")).to_contain_text("No knowledge bases yet.")

        page.fill("#kb-name", "manuals")
        page.click("#kb-create-submit")
        refusal = page.locator("#create-kb .form-error")
        expect(refusal).to_be_visible()
        assert "manuals" not in services.library.names()
        message = refusal.inner_text()
        assert message and "403" not in message  # the server's own words, not a bare status

        page.click(".tabs a[data-view='settings']")
        expect(page.locator("#models-card tbody tr")).to_have_count(1)
        expect(page.locator("#answering-card [data-setting='chat.no_hit']")).to_contain_text(
            "refuse"
        )
        expect(page.locator("#doctor-checks .form-error")).to_be_visible()
        add = page.locator("#model-add-form")  # the models view is an admin's too
        add.locator("input[name='name']").fill("mine")
        add.locator("input[name='path']").fill("/models/mine-q4_k_m.gguf")
        add.locator("#model-add").click()
        expect(add.locator(".form-error")).to_contain_text("Only an admin key may change settings")
        expect(page.locator("#models-card tr[data-model='mine']")).to_have_count(0)
        screenshot(page, "e2e-settings-read-only")
    services.close()


def test_a_folder_upload_keeps_folders_and_asks_before_replacing(
    page: Any, live_app: LiveServer, tmp_path: Any
) -> None:
    branches = tmp_path / "分公司"
    for branch, text in (
        ("北京", "北京上班时间为上午九点。"),
        ("上海", "上海上班时间为上午八点半。"),
    ):
        (branches / branch).mkdir(parents=True)
        (branches / branch / "考勤 制度.txt").write_text(text, encoding="utf-8")
    page.goto(f"{live_app.url}/#/kbs")
    page.fill("#kb-name", "hr")
    page.click("#kb-create-submit")
    expect(page.locator("#kb-title")).to_have_text("hr")

    page.set_input_files("#folder-input", branches)
    job = page.locator("#jobs .job").first
    expect(job).to_have_attribute("data-status", "done", timeout=30_000)
    expect(job.locator(".job-label")).to_contain_text("Done: 2 indexed, 0 failed")
    rows = page.locator("#file-rows tr")
    expect(rows).to_have_count(2)
    names = sorted(rows.evaluate_all("rows => rows.map((row) => row.dataset.name)"))
    assert names == ["分公司/上海/考勤 制度.txt", "分公司/北京/考勤 制度.txt"]

    (branches / "北京" / "考勤 制度.txt").write_text("北京上班时间改为上午十点。", encoding="utf-8")
    page.set_input_files("#folder-input", branches)
    refused = page.locator("#jobs .job").first
    expect(refused).to_have_attribute("data-status", "failed")
    expect(refused.locator(".job-label")).to_contain_text("分公司/北京/考勤 制度.txt")
    refused.locator(".job-action").click()
    replaced = page.locator("#jobs .job").first
    expect(replaced).to_have_attribute("data-status", "done", timeout=30_000)
    expect(replaced.locator(".job-label")).to_contain_text("Done: 1 indexed")
    page.fill("#search-query", "上班时间")
    page.click("#search-submit")
    expect(page.locator("#search-results")).to_contain_text("上午十点")


def test_an_unsupported_answer_is_declined_and_stays_declined_after_a_reload(page: Any) -> None:
    from kbchat.server.app import create_app

    settings = load_settings(embedder={"backend": "hash"}, chat=NO_ANSWER_BAR)
    services = build(settings)
    invented = "Edit ~/.kbchat/config.yaml and set port: 8080, then run kbchat restart."
    services.models.add(settings.default_model, ScriptedChatModel([invented], name="scripted"))
    kb = services.library.ensure("manuals")
    folder = services.settings.home / "docs"
    folder.mkdir(parents=True)
    buffer = FILES[0]["buffer"]
    assert isinstance(buffer, bytes)
    (folder / "kettle.txt").write_bytes(buffer)
    kb.add([folder])
    with LiveServer(create_app(settings, services=services)) as server:
        page.goto(server.url)
        page.click("#kb-summary")
        page.check("#kb-picker input[value='manuals']")
        page.click("#messages")
        page.fill("#question", "How do I change the port of the kettle server?")
        page.press("#question", "Enter")
        answer = page.locator(".msg.assistant").last
        expect(answer).not_to_have_class("msg assistant streaming", timeout=20_000)
        expect(answer.locator(".answer-body")).not_to_contain_text("8080")
        expect(answer.locator(".note.info").last).to_contain_text("Declined")
        expect(answer.locator(".closest-sources .source-file").first).to_have_text("kettle.txt")

        page.reload()
        page.locator("#conv-list li a").first.click()
        answer = page.locator(".msg.assistant").last
        expect(answer.locator(".answer-body")).not_to_contain_text("8080")
        expect(answer.locator(".note.info").last).to_contain_text("Declined")
        expect(answer.locator(".closest-sources .source-file").first).to_have_text("kettle.txt")
        screenshot(page, "e2e-declined")
    services.close()


def test_agent_mode_shows_tool_steps_live_and_after_reload(page: Any) -> None:
    import json as jsonlib

    from kbchat.server.app import create_app
    from kbchat.types import ToolCall

    settings = load_settings(
        embedder={"backend": "hash"}, chat=NO_ANSWER_BAR, agent={"router": "model"}
    )
    services = build(settings)
    call = ToolCall("c1", "calculator", jsonlib.dumps({"expression": "399 * 2"}))
    services.models.add(
        settings.default_model, SlowScriptedModel([[call], "Two kettles cost 798 yuan."])
    )
    with LiveServer(create_app(settings, services=services)) as server:
        page.goto(server.url)
        page.select_option("#mode-select", "agent")
        expect(page.locator("#mode-hint")).to_contain_text("calculator")
        expect(page.locator("#mode-hint")).to_contain_text("summarize_file")
        page.fill("#question", "How much are two kettles at 399 each?")
        page.click("#send")
        step = page.locator(".msg.assistant .tool-step").first
        expect(step).to_contain_text("calculator")
        expect(step).to_contain_text("399 * 2 = 798")
        expect(page.locator(".msg.assistant .answer-body")).to_contain_text("798 yuan")
        page.reload()
        expect(page.locator(".msg.assistant .tool-step").first).to_contain_text("399 * 2 = 798")
        expect(page.locator("#mode-select")).to_have_value("agent")  # the choice is remembered
    services.close()
