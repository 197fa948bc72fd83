"""The settings view against the real server: the models' facts, adding, pulling and choosing
models, the settings editor (saved to kbchat.toml, kept after a reload), the colour choice, and
the first start's progress."""

from __future__ import annotations

import re
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import LiveServer, screenshot
from playwright.sync_api import expect

from kbchat.app import build
from kbchat.config import load_settings
from kbchat.registry import embedders
from kbchat.testing.fakes import HashEmbedder, ScriptedChatModel
from tests.llm.hf_mirror import Mirror, serve_mirror
from tests.llm.tiny_gguf import write_tiny_gguf
from tests.server.support import NO_ANSWER_BAR

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class SlowHashEmbedder(HashEmbedder):
    """The hash embedder, 0.4 s a batch of passages, so the page can see the sample KB build."""

    def embed_batch(self, texts: Any, *, is_query: bool = False) -> Any:
        if not is_query:
            time.sleep(0.4)
        return super().embed_batch(texts, is_query=is_query)


@pytest.fixture(autouse=True)
def slow_hash() -> Iterator[None]:
    embedders.register("slow-hash", SlowHashEmbedder)
    yield
    embedders.unregister("slow-hash")


@pytest.fixture
def live_app(tmp_path: Path, kbchat_home: Path) -> Iterator[tuple[LiveServer, Path]]:
    from kbchat.server.app import create_app

    tiny = write_tiny_gguf(tmp_path / "tiny-q4.gguf")
    models = {"qwen2.5-0.5b": {}, "tiny": {"path": str(tiny), "n_ctx": 1024}}
    settings = load_settings(embedder={"backend": "slow-hash"}, chat=NO_ANSWER_BAR, models=models)
    services = build(settings)
    services.models.add(settings.default_model, ScriptedChatModel(["OK"], name="scripted"))
    with LiveServer(create_app(settings, services=services, seed_sample=True)) as server:
        yield server, kbchat_home / "kbchat.toml"
    services.close()


def test_models_editor_and_theme(page: Any, live_app: tuple[LiveServer, Path]) -> None:
    server, config = live_app
    page.goto(f"{server.url}/#/settings")
    tiny = page.locator("#models-card tr[data-model='tiny']")
    expect(tiny).to_contain_text("Q4_K_M")
    expect(tiny).to_contain_text("context 1024 of 2048")
    expect(tiny).to_contain_text("memory")
    expect(
        page.locator("#models-card [data-embedded='qwen2.5-coder-1.5b-instruct']")
    ).to_contain_text("kbchat[llm-large]")
    form = page.locator("#settings-form")
    form.locator("input[name='top_k']").fill("0")
    form.locator("#settings-save").click()
    expect(form.locator(".form-error")).to_contain_text("top_k")  # the server's reason
    assert not config.exists()
    form.locator("input[name='top_k']").fill("3")
    form.locator("select[name='no_hit']").select_option("fallback")
    form.locator("#settings-save").click()
    expect(form.locator(".ok-text")).to_have_text("Settings saved and in effect.")
    saved = tomllib.loads(config.read_text(encoding="utf-8"))
    assert saved["chat"]["top_k"] == 3 and saved["chat"]["no_hit"] == "fallback"
    screenshot(page, "settings-editor")

    page.locator("#theme-select").select_option("dark")
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    dark = page.evaluate("getComputedStyle(document.body).backgroundColor")
    page.reload()
    expect(page.locator("#settings-form input[name='top_k']")).to_have_value("3")
    expect(page.locator("#theme-select")).to_have_value("dark")
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == dark
    page.locator("#theme-select").select_option("light")
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") != dark
    page.locator("#theme-select").select_option("system")
    assert page.evaluate("document.documentElement.dataset.theme") is None


def test_first_start_shows_the_sample_kb_progress(
    page: Any, live_app: tuple[LiveServer, Path]
) -> None:
    server, _ = live_app
    page.goto(f"{server.url}/#/chat")
    banner = page.locator("#first-run")
    expect(banner).to_contain_text(re.compile(r"Indexing the sample knowledge base [1-9]\d*/\d+"))
    screenshot(page, "first-run-progress")
    expect(banner).to_have_text("The sample knowledge base is ready: ask about kbchat.")
    expect(banner).to_be_hidden()


def test_models_view_adds_a_gguf_pulls_one_and_sets_the_default(
    page: Any,
    live_app: tuple[LiveServer, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server, config = live_app
    page.goto(f"{server.url}/#/settings")
    card = page.locator("#models-card")
    tiny = card.locator("tr[data-model='tiny']")
    expect(tiny).to_contain_text("Q4_K_M")
    expect(card.locator("tr[data-model='qwen2.5-0.5b']")).to_contain_text("default")

    tiny.locator(".model-default").click()
    expect(page.locator(".toast.ok").last).to_contain_text("tiny is now the default model.")
    expect(card.locator("tr[data-model='tiny']")).to_contain_text("default")
    expect(card.locator("tr[data-model='qwen2.5-0.5b'] .model-default")).to_be_visible()
    expect(page.locator("#settings-form select[name='default_model']")).to_have_value("tiny")
    assert tomllib.loads(config.read_text(encoding="utf-8"))["default_model"] == "tiny"

    add = card.locator("#model-add-form")
    add.locator("input[name='name']").fill("local")
    add.locator("input[name='path']").fill(str(tmp_path / "missing.gguf"))
    add.locator("#model-add").click()
    expect(add.locator(".form-error")).to_contain_text("path: no file")
    local = write_tiny_gguf(tmp_path / "local-q4.gguf")
    add.locator("input[name='path']").fill(str(local))
    add.locator("input[name='n_ctx']").fill("1024")
    add.locator("#model-add").click()
    row = card.locator("tr[data-model='local']")
    expect(row).to_contain_text("Q4_K_M")
    expect(row).to_contain_text("context 1024 of 2048")
    assert tomllib.loads(config.read_text(encoding="utf-8"))["models"]["local"]["n_ctx"] == 1024

    weights = write_tiny_gguf(tmp_path / "w.gguf").read_bytes()
    with serve_mirror(Mirror({"owner/tiny-GGUF": {"tiny-q4_k_m.gguf": weights}})) as mirror:
        monkeypatch.setenv("MODELSCOPE_ENDPOINT", mirror.url)
        pull = page.locator("#models-card #model-pull-form")
        pull.locator("select[name='source']").select_option("modelscope")
        pull.locator("input[name='reference']").fill("owner/tiny-GGUF")
        pull.locator("input[name='name']").fill("pulled")
        pull.locator("#model-pull-start").click()
        expect(page.locator(".toast.ok").last).to_contain_text("Downloaded and added as pulled.")
    pulled = page.locator("#models-card tr[data-model='pulled']")
    expect(pulled).to_contain_text("Q4_K_M")
    expect(pulled).to_contain_text("tiny-q4_k_m.gguf")
    screenshot(page, "settings-models")
