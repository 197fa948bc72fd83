"""`kbchat serve`, `kbchat worker` and `kbchat mcp`: the long-running processes."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Annotated, Any

import typer

from kbchat.cli.base import err

if TYPE_CHECKING:
    from kbchat.config import Settings
    from kbchat.kb.worker import Worker

STARTUP_FAILURE = 3
"""Exit code when the server could not start (uvicorn's)."""


def mcp() -> None:
    """Serve your knowledge bases to MCP clients (editors, desktop assistants) over stdio.

    Tools: list_knowledge_bases, search, ask. Configure the client to run `kbchat mcp`.
    Over HTTP, `kbchat serve` offers the same at /mcp, with API keys.
    """
    from kbchat.app import build
    from kbchat.config import load_settings
    from kbchat.runtime import configure_process
    from kbchat.server.mcp import run_stdio

    configure_process()
    services = build(load_settings())
    try:
        run_stdio(services)
    finally:
        services.close()


def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind \\[server.host].")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port \\[server.port].")] = None,
    sample: Annotated[bool, typer.Option(help="Build the sample KB if there is none.")] = True,
    insecure_no_auth: Annotated[
        bool,
        typer.Option(
            "--insecure-no-auth",
            help='Allow server.auth = "off" on a non-loopback host (refused otherwise): '
            "anyone who reaches the port may read, change and delete every knowledge base "
            "(setting server.insecure_no_auth).",
        ),
    ] = False,
) -> None:
    """Serve the web UI, the REST API and the OpenAI-compatible API in one process.

    Ctrl-C says what it waits for (answers being generated, the files being ingested) and
    for how long at most (30 s): no new file starts, a file whose chunks are all embedded is
    committed, any other stops at its next embedding batch and runs again at the next start.
    A second Ctrl-C quits at once (an unfinished ingest task runs again at the next start).
    On a non-loopback host API keys are required (`kbchat keys add`); server.auth = "off"
    there refuses to start unless --insecure-no-auth is given.
    """
    import uvicorn

    from kbchat.config import load_settings
    from kbchat.logging import redact_also
    from kbchat.server import create_app
    from kbchat.server.shutdown import GracefulServer

    given: dict[str, object] = {
        k: v for k, v in {"host": host, "port": port}.items() if v is not None
    }
    if insecure_no_auth:
        given["insecure_no_auth"] = True
    settings = load_settings(server=given) if given else load_settings()
    redact_also(_secrets(settings))
    check_storage(settings)
    application = create_app(settings, seed_sample=sample, warm_up=True)
    bind = settings.server.host
    url = f"http://{f'[{bind}]' if ':' in bind else bind}:{settings.server.port}"
    err.print(
        f"kbchat serving {url}/  (API docs {url}/docs, OpenAI API {url}/v1); Ctrl-C stops",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    config = uvicorn.Config(
        application,
        host=bind,
        port=settings.server.port,
        log_config=None,  # uvicorn's lines go through kbchat's handler (text or json)
        access_log=False,  # kbchat.server.access_log writes one line per request
        timeout_graceful_shutdown=10,
    )

    def say(line: str) -> None:
        err.print(line, markup=False, highlight=False, soft_wrap=True)

    server = GracefulServer(config, application, say)
    with contextlib.suppress(KeyboardInterrupt):  # the Ctrl-C that stopped it, raised again
        server.run()
    if not server.started:  # the port is taken, or the start-up failed (logged)
        raise typer.Exit(STARTUP_FAILURE)


def worker(
    threads: Annotated[
        int, typer.Option(min=1, max=16, help="Workers in this process (one task each).")
    ] = 1,
) -> None:
    """Run write jobs (uploads, syncs, rebuilds) queued in the catalog by any server.

    Point it at the servers' catalog (catalog.url): each worker claims a task, renews its
    lease while it runs, and a task left by a worker that died is picked up by another after
    the lease runs out (30 s). Ctrl-C starts no new file and ends the file in hand (at its
    next embedding batch, at most 120 s; what is unfinished goes back to the queue); a second
    Ctrl-C quits at once. A server started with server.workers = 0 only queues jobs, for
    workers like this one.
    """
    import signal
    import threading

    from kbchat.app import build
    from kbchat.config import load_settings
    from kbchat.kb.jobs import JobQueue
    from kbchat.kb.worker import Worker
    from kbchat.logging import redact_also
    from kbchat.runtime import configure_process

    settings = load_settings()
    redact_also(_secrets(settings))
    check_storage(settings)  # one line if the catalog is unreachable; a warning per store
    configure_process()
    services = build(settings)
    queue = JobQueue(services.library.catalog)
    busy: set[str] = set()
    workers = [Worker(services, queue, busy=busy) for _ in range(threads)]
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    for one in workers:
        one.start()
    err.print(
        f"kbchat worker: {threads} worker(s) on catalog {_shown_url(settings)}; Ctrl-C stops",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        for one in workers:
            one.stop_soon()
        held = [f"{kb!r}: {', '.join(files) or 'a task'}" for kb, files in _in_hand(workers)]
        err.print(
            f"Stopping: no new file starts; waiting for {'; '.join(held) or 'nothing'} (at most "
            f"{WORKER_STOP_WAIT_S:g} s); press Ctrl-C again to quit now",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    finally:
        for one in workers:
            one.stop(timeout=WORKER_STOP_WAIT_S)
        services.close()


WORKER_STOP_WAIT_S = 120.0
"""Longest wait, in seconds, for a `kbchat worker`'s file in hand after Ctrl-C."""


def _in_hand(workers: list[Worker]) -> list[tuple[str, list[str]]]:
    return [held for one in workers if (held := one.in_hand()) is not None]


def _shown_url(settings: Settings) -> str:
    from kbchat.store.reach import masked_url

    return masked_url(settings.catalog_url)


def check_storage(settings: Settings) -> None:
    """Before serving: the catalog must open, and each vector store server in use should answer.

    Raises:
        BackendError: the catalog database cannot be opened (one line naming it).
    """
    import logging

    from kbchat.doctor import store_checks, stores_in_use
    from kbchat.store.catalog import Catalog

    Catalog(settings.catalog_url).close()
    for check in store_checks(settings, stores_in_use(settings)):
        if not check.ok:  # its knowledge bases answer 502 with this line until it is back
            logging.getLogger("kbchat.serve").warning("%s: %s", check.name, check.detail)


def _secrets(settings: Settings) -> list[str]:
    """The API keys in ``settings`` (chat models, embedder, reranker, server keys)."""
    sections: list[Any] = [*settings.models.values(), settings.embedder, settings.rerank]
    keys = [getattr(section, "api_key", None) for section in sections]
    return [key.get_secret_value() for key in keys if key is not None]
