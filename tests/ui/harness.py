"""The browser-test harness: the real app served on loopback, fresh pages, and screenshots."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kbchat.testing.fakes import HashEmbedder

INDEXING = threading.Event()
"""Open (set) unless a test holds the indexer: ``GatedHashEmbedder`` waits for it."""
INDEXING.set()


class GatedHashEmbedder(HashEmbedder):
    """The hash embedder, whose passages wait for ``INDEXING`` (queries never wait), so a
    test can see files waiting and being indexed before it lets the job finish."""

    def embed_batch(self, texts: Any, *, is_query: bool = False) -> Any:
        if not is_query:
            INDEXING.wait(60)
        return super().embed_batch(texts, is_query=is_query)


ARTIFACTS = Path(
    os.environ.get("KBCHAT_UI_ARTIFACTS") or Path(__file__).resolve().parent / "artifacts"
)
"""Where screenshots go: tests/ui/artifacts/ (gitignored), or $KBCHAT_UI_ARTIFACTS."""


class LiveServer:
    """An ASGI app served by uvicorn in a background thread on a free loopback port."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(
            app, log_level="warning", lifespan="on", timeout_graceful_shutdown=2
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run,
            kwargs={"sockets": [self.sock]},
            name="ui-test-server",
            daemon=True,
        )

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"test server at {self.url} did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


def open_page(
    browser: Any, *, locale: str = "en-US", width: int = 1280, height: int = 820
) -> tuple[Any, Any, list[str]]:
    """A fresh context and page; uncaught page errors are collected in the returned list."""
    context = browser.new_context(locale=locale, viewport={"width": width, "height": height})
    context.set_default_timeout(30_000)
    # CI shares two cores with model-heavy tests: give assertions room, they still fail fast
    # on a wrong value once the page has settled.
    from playwright.sync_api import expect

    expect.set_options(timeout=30_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return context, page, errors


def screenshot(page: Any, name: str) -> Path:
    """Save a full-page screenshot under ``ARTIFACTS`` and return its path."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


_OTHER_THUMB = {"up": "down", "down": "up"}


def rate(answer: Any, verdict: str, comment: str) -> None:
    """Rate ``answer`` (a ``.msg.assistant`` locator) ``up`` or ``down`` with ``comment``, and
    wait until the page shows it saved."""
    answer.locator(f".action-{verdict}").click()
    expect_rated(answer, verdict, comment=None)
    answer.locator(".feedback-comment").fill(comment)
    answer.locator(".feedback-save").click()
    expect_rated(answer, verdict, comment)


def expect_rated(answer: Any, verdict: str, comment: str | None) -> None:
    """``answer`` shows the ``verdict`` thumb pressed, the other not, and ``comment`` as saved
    (None: the comment is not checked)."""
    from playwright.sync_api import expect

    expect(answer.locator(f".action-{verdict}")).to_have_attribute("aria-pressed", "true")
    other = answer.locator(f".action-{_OTHER_THUMB[verdict]}")
    expect(other).to_have_attribute("aria-pressed", "false")
    if comment is not None:
        expect(answer.locator(".feedback-said")).to_have_text(f"Your comment: {comment}")


def wait_for_partial_answer(page: Any, fragment: str) -> None:
    """Wait until the last answer shows ``fragment`` while it is still streaming."""
    page.wait_for_function(
        """(fragment) => {
            const answer = [...document.querySelectorAll('.msg.assistant')].pop();
            return Boolean(answer) && answer.classList.contains('streaming')
                && answer.querySelector('.answer-body').textContent.includes(fragment);
        }""",
        arg=fragment,
    )


class Served:
    """The real app (``create_app``) on a socket, with its services for the test to drive."""

    def __init__(self, url: str, services: Any, app: Any) -> None:
        self.url = url
        self.services = services
        self.app = app

    @property
    def state(self) -> Any:
        return self.app.state.kbchat

    def reset(self) -> None:
        """Forget every conversation and knowledge base with its uploads, as the API's
        deletes do (between tests sharing the server)."""
        conversations = self.state.conversations
        for conversation in conversations.list_conversations(None):
            conversations.delete(conversation.id, None)
        library = self.services.library
        for record in library.records():
            for job in self.state.jobs.active(record.name):  # a test may leave one running
                self.state.jobs.wait(job.id, timeout=30)
            library.drop(record.name)  # with its uploads


@contextmanager
def serve(home: Path, model: Any = None, **overrides: Any) -> Iterator[Served]:
    """The real app over ``home`` (gated hash embedder, no answer bar), with ``model`` (a scripted
    chat model) as the default model; ``overrides`` are settings, as for ``load_settings``."""
    from kbchat.app import build
    from kbchat.config import load_settings
    from kbchat.registry import embedders
    from kbchat.server.app import create_app
    from kbchat.testing.fakes import ScriptedChatModel
    from tests.server.support import NO_ANSWER_BAR

    registers = "gated-hash" not in embedders.names()  # for the outermost server's life only
    if registers:
        embedders.register("gated-hash", GatedHashEmbedder)
    given = {"embedder": {"backend": "gated-hash"}, "chat": NO_ANSWER_BAR, **overrides}
    settings = load_settings(environ={"KBCHAT_HOME": str(home)}, **given)
    services = build(settings)
    services.models.add(settings.default_model, model or ScriptedChatModel(["OK"]))
    app = create_app(settings, services=services)
    try:
        with LiveServer(app) as server:
            yield Served(server.url, services, app)
    finally:
        services.close()
        if registers:
            embedders.unregister("gated-hash")
