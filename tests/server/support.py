"""Helpers for the server tests: settings, services, uploads, SSE parsing, fake models."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from kbchat.app import Services, build
from kbchat.config import Settings, load_settings
from kbchat.server import create_app
from kbchat.testing.fakes import ScriptedChatModel
from kbchat.types import Delta, Message

DOCS = {
    "kettle.txt": b"The K3 kettle has a two year warranty. Descale it every month.",
    "tea.md": b"# Tea\n\nBrew green tea at 80 degrees for two minutes.",
}


# Hash vectors carry no meaning, so relevance is not calibrated: the bar for answering
# (chat.min_score) is off here; tests/chat and tests/llm test it.
NO_ANSWER_BAR = {"min_score": 0.0, "min_score_cross": 0.0}


def make_settings(*, parallel: int | None = None, **server: Any) -> Settings:
    """Test settings; ``parallel``: the default model's generation slots."""
    settings = load_settings(embedder={"backend": "hash"}, chat=NO_ANSWER_BAR, server=server)
    if parallel is not None:
        settings.models[settings.default_model].parallel = parallel
    return settings


def make_services(settings: Settings, model: Any = None) -> Services:
    services = build(settings)
    services.models.add(settings.default_model, model or ScriptedChatModel(["OK"]))
    return services


def wait_job(
    client: TestClient,
    job: dict[str, Any],
    timeout: float = 20.0,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Poll a job until it finishes (fails the test after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body: dict[str, Any] = client.get(f"/api/jobs/{job['id']}", headers=headers).json()
        if body["status"] in ("done", "failed", "cancelled"):
            return body
        time.sleep(0.02)
    raise AssertionError(f"job {job['id']} did not finish in {timeout} s")


def upload(
    client: TestClient, kb: str, files: dict[str, bytes], headers: dict[str, str] | None = None
) -> dict[str, Any]:
    """Upload ``files`` to ``kb`` and wait for the ingest job."""
    response = client.post(
        f"/api/kbs/{kb}/files",
        headers=headers,
        files=[("files", (name, data, "application/octet-stream")) for name, data in files.items()],
    )
    assert response.status_code == 202, response.text
    return wait_job(client, response.json()["job"], headers=headers)


def sse_events(text: str) -> list[tuple[str, Any]]:
    """(event, parsed data) pairs of an SSE body."""
    events = []
    for block in text.split("\n\n"):
        lines = [line for line in block.split("\n") if line and not line.startswith(":")]
        if not lines:
            continue
        name = next((ln[7:] for ln in lines if ln.startswith("event: ")), "message")
        data = "\n".join(ln[6:] for ln in lines if ln.startswith("data: "))
        events.append((name, json.loads(data) if data and data != "[DONE]" else data))
    return events


class GatedChatModel:
    """A chat model that signals when it starts and waits for a gate before answering.

    Each word is sent only after ``delay`` seconds; ``cancel`` is honoured between words,
    and the finish reason of every stream is recorded in ``finishes``.
    """

    def __init__(
        self,
        words: Sequence[str] = ("one ", "two ", "three"),
        *,
        delay: float = 0.0,
        gate: threading.Event | None = None,
        name: str = "gated",
    ) -> None:
        self.words = list(words)
        self.delay = delay
        self.gate = gate
        self.name = name
        self.context_window = 4096
        self.started = threading.Event()
        self.finishes: list[str] = []
        self.received: list[list[Message]] = []

    def count_tokens(self, text: str) -> int:
        return max(1, len(text) // 4)

    def stream(
        self,
        messages: Sequence[Message],
        *,
        temperature: float = 0.2,
        max_tokens: int = 512,
        stop: Sequence[str] = (),
        cancel: threading.Event | None = None,
    ) -> Iterator[Delta]:
        self.received.append(list(messages))
        return self._run(cancel)

    def _run(self, cancel: threading.Event | None) -> Iterator[Delta]:
        self.started.set()
        if self.gate is not None:
            while not self.gate.wait(0.01):
                if cancel is not None and cancel.is_set():
                    self.finishes.append("cancelled")
                    yield Delta(finish_reason="cancelled")
                    return
        for word in self.words:
            if cancel is not None and cancel.wait(self.delay):
                self.finishes.append("cancelled")
                yield Delta(finish_reason="cancelled")
                return
            yield Delta(text=word)
        self.finishes.append("stop")
        yield Delta(finish_reason="stop")


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll ``check`` until it is true or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


@contextmanager
def live_server(app: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port in a thread; yields its base URL."""
    import uvicorn

    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="test-uvicorn")
    thread.start()
    try:
        assert eventually(lambda: server.started, 20), "uvicorn did not start"
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(20)


@contextmanager
def in_process_server(home: Path, model: Any = None) -> Iterator[TestClient]:
    """kbchat's app over the hash embedder and ``model`` (scripted "OK" by default), in
    this process; the client's base URL is ``http://testserver``."""
    settings = load_settings(home=home, embedder={"backend": "hash"}, chat=NO_ANSWER_BAR)
    services = make_services(settings, model)
    try:
        with TestClient(create_app(settings, services=services)) as client:
            yield client
    finally:
        services.close()
