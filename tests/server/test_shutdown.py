"""Stopping `kbchat serve`: the first Ctrl-C says what it waits for, a second one quits now
without waiting for an ingest task in hand (which left its file as it was)."""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import uvicorn

from kbchat.kb.jobs import JobQueue, Task
from kbchat.kb.worker import Work, Worker
from kbchat.server import create_app
from kbchat.server.shutdown import GracefulServer, stopping_message
from tests.server.support import make_services, make_settings


def state(answers: int = 0, waiting: int = 0, held: Sequence[tuple[str, list[str]]] = ()) -> Any:
    queue = SimpleNamespace(running=answers, waiting=waiting)
    workers = [SimpleNamespace(in_hand=lambda h=h: h) for h in [*held, None]]
    return SimpleNamespace(queues=SimpleNamespace(all=lambda: [queue]), workers=workers)


def test_the_stopping_line_names_what_is_in_flight_and_the_longest_wait() -> None:
    assert stopping_message(state(answers=1, held=[("docs", ["a.txt"])]), wait_s=30) == (
        "Stopping: waiting for 1 running answer and the ingest of 'a.txt' in 'docs' (no new "
        "file starts; at most 30 s, then what is unfinished runs again at the next start); "
        "press Ctrl-C again to quit now"
    )
    assert stopping_message(state(answers=1, waiting=2)) == (
        "Stopping: waiting for 3 running answers; press Ctrl-C again to quit now"
    )
    two = stopping_message(state(held=[("docs", ["a.txt", "b.txt"]), ("hr", [])]), wait_s=12)
    assert two.startswith(
        "Stopping: waiting for the ingest of 'a.txt', 'b.txt' in 'docs'; a write to 'hr' "
        "(no new file starts; at most 12 s,"
    )
    assert stopping_message(state()) == "Stopping; press Ctrl-C again to quit now"
    assert stopping_message(None) == "Stopping; press Ctrl-C again to quit now"  # not started


def test_a_worker_stops_waiting_for_its_task_when_told(tmp_path: Any) -> None:
    from kbchat.store.catalog import Catalog

    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    queue = JobQueue(catalog)
    entered, release = threading.Event(), threading.Event()

    def slow(work: Work) -> None:
        entered.set()
        release.wait(30)

    worker = Worker(None, queue, ops={"add": slow}, poll_s=0.02)  # type: ignore[arg-type]
    queue.submit("kb", "add", [Task("add", file="a.txt")])
    worker.start()
    try:
        assert entered.wait(10) and worker.busy
        abandon = threading.Event()
        abandon.set()
        assert worker.stop(timeout=60, abandon=abandon) is False  # returned, task unfinished
        assert not release.is_set()
    finally:
        release.set()
        assert worker.stop(timeout=10) is True
        catalog.close()


@dataclass
class Serving:
    """A running server whose worker blocks in each embedding call until ``release``."""

    url: str
    server: GracefulServer
    app: Any
    said: list[str]
    entered: threading.Event
    release: threading.Event
    embedded: list[str]
    thread: threading.Thread


@contextmanager
def serving_with_held_embeddings(
    monkeypatch: pytest.MonkeyPatch, settings: Any, services: Any
) -> Iterator[Serving]:
    """``kbchat serve`` (GracefulServer over uvicorn) on a free loopback port, its worker
    held inside the embedder of knowledge base "docs" until ``release`` is set; stopped and
    joined on exit."""
    kb = services.library.get("docs")
    entered, release = threading.Event(), threading.Event()
    embedded: list[str] = []
    embed = kb.embedder.embed_batch

    def held(texts: list[str], *, is_query: bool = False) -> object:
        if not is_query:
            embedded.extend(texts)
            entered.set()
            release.wait(60)
        return embed(texts, is_query=is_query)

    monkeypatch.setattr(kb.embedder, "embed_batch", held)
    app = create_app(settings, services=services)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    said: list[str] = []
    server = GracefulServer(
        uvicorn.Config(app, lifespan="on", log_level="warning"), app, said.append
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:  # start-up, not a timed assertion
            assert thread.is_alive() and time.monotonic() < deadline
            time.sleep(0.02)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        yield Serving(url, server, app, said, entered, release, embedded, thread)
        thread.join(60)
        assert not thread.is_alive()
    finally:
        release.set()
        thread.join(30)
        for worker in app.state.kbchat.workers:
            worker.stop(timeout=30)
        sock.close()


def test_a_second_ctrl_c_quits_without_waiting_for_the_ingest_task(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = make_settings(workers=1)
    services = make_services(settings)
    services.library.create("docs")
    with serving_with_held_embeddings(monkeypatch, settings, services) as run:
        files = {"files": ("a.txt", b"The kettle boils water.", "text/plain")}
        response = httpx.post(f"{run.url}/api/kbs/docs/files", files=files)
        assert response.status_code == 202
        assert run.entered.wait(20)  # the worker is embedding the file
        run.server.handle_exit(signal.SIGINT, None)
        assert run.said[0].startswith("Stopping: waiting for the ingest of 'a.txt' in 'docs' (")
        assert not run.server.force_exit
        run.server.handle_exit(signal.SIGINT, None)
        assert run.said[1].startswith("Quitting now") and run.server.force_exit
        run.thread.join(30)  # it ends without waiting for the task held in the embedder
        assert not run.thread.is_alive() and not run.release.is_set()
    services.close()


def test_the_first_ctrl_c_ends_the_file_in_hand_and_starts_no_other(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = make_settings(workers=1)
    settings.embedder.batch_size = 1  # one file per embedding call
    services = make_services(settings)
    services.library.create("docs")
    with serving_with_held_embeddings(monkeypatch, settings, services) as run:
        files = [
            ("files", ("a.txt", b"The kettle boils water.", "text/plain")),
            ("files", ("b.txt", b"Giraffes eat leaves.", "text/plain")),
        ]
        response = httpx.post(f"{run.url}/api/kbs/docs/files", files=files)
        assert response.status_code == 202
        assert run.entered.wait(20)  # a.txt is being embedded
        run.server.handle_exit(signal.SIGINT, None)
        said = run.said
        assert len(said) == 1 and "'a.txt' in 'docs'" in said[0] and "at most 30 s" in said[0]
        run.release.set()
    assert run.embedded == ["The kettle boils water."]  # b.txt was never started
    job = run.app.state.kbchat.jobs.get(response.json()["job"]["id"])
    assert [(f.name, f.status) for f in job.files] == [("a.txt", "indexed"), ("b.txt", "pending")]
    assert job.status == "queued"  # b.txt waits in the queue for the next start
    services.close()
