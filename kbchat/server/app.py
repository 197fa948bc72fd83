"""The FastAPI application: ``create_app(settings)`` wires services, routers, limits and the UI.

Services are built in the app's lifespan (never at import), or passed in by tests and
embedding applications. The one place outside the CLI that reads ``Settings``.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.middleware.cors import CORSMiddleware
from fastapi_offline import FastAPIOffline
from filelock import Timeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kbchat import __version__
from kbchat.app import Services, build
from kbchat.config import Settings
from kbchat.errors import BadInput
from kbchat.ingest.loaders import supported_extensions
from kbchat.kb.jobs import JobQueue
from kbchat.kb.knowledge_base import write_lock
from kbchat.kb.originals import sweep_staged
from kbchat.kb.worker import Worker, add_tasks
from kbchat.registry import load_plugins
from kbchat.runtime import configure_process
from kbchat.server import (
    agent_api,
    chat_api,
    conversations_api,
    files_api,
    kb_api,
    models_api,
    openai_api,
    openai_files,
    settings_api,
    sources_api,
    summary_api,
)
from kbchat.server.access_log import AccessLog
from kbchat.server.auth import ALL_KBS, Authenticator, Principal
from kbchat.server.errors import (
    PayloadTooLarge,
    documented,
    error_body,
    honest_openapi,
    install_error_handlers,
    openai_error_body,
    route_methods,
)
from kbchat.server.first_run import seed_sample as seed_sample_kb
from kbchat.server.first_run import warm_default_model
from kbchat.server.generation_queue import GenerationQueues
from kbchat.server.mcp import build_mcp, mount_mcp
from kbchat.server.shutdown import WORKER_STOP_WAIT_S
from kbchat.server.state import ServerState, current_principal, get_state
from kbchat.server.streams import document_streams
from kbchat.shapes.system import (
    DoctorCheck,
    EmbeddedModelInfo,
    GenerationLoad,
    Health,
    ModelInfo,
    PublicSettings,
    embedded_model_info,
    model_info,
)
from kbchat.store.catalog_schema import FileRecord
from kbchat.store.conversations import ConversationStore

INTERRUPTED = "queued again: a server stop interrupted its ingest"
_UPLOAD_PATH = re.compile(
    r"^/api/kbs/[^/]+/files/?$|^/api/conversations/[^/]+/files/?$|^/v1/chat/completions$"
)
"""Requests that may carry files: limited by server.max_request_mb, not server.max_body_kb."""
log = logging.getLogger(__name__)

StateDep = Annotated[ServerState, Depends(get_state)]
CallerDep = Annotated[Principal, Depends(current_principal)]


def create_app(
    settings: Settings,
    *,
    services: Services | None = None,
    seed_sample: bool = False,
    warm_up: bool = False,
) -> FastAPI:
    """The kbchat web app: REST API, OpenAI-compatible API, web UI (when installed).

    Args:
        settings: The server's settings (``settings.server`` for bind, auth and limits).
        services: Ready services (tests inject fakes); default: built at start-up and
            closed at shut-down.
        seed_sample: At start-up, build the sample knowledge base ``kbchat-docs`` in a
            background job if there is no knowledge base yet.
        warm_up: At start-up, load the default chat model on a background thread, so
            the first question does not wait for it (``kbchat.server.first_run``).

    Raises:
        ConfigError: API keys are required (non-loopback bind) but none is configured.
    """
    load_plugins(settings.plugins)
    auth = Authenticator(settings)
    mcp = build_mcp(lambda: app.state.kbchat.services, auth.authenticate)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = services is None
        if own:  # an application passing its services has set up its process itself
            configure_process()
        running = services if services is not None else build(settings)
        state = ServerState(
            settings=settings,
            services=running,
            jobs=JobQueue(running.library.catalog),
            conversations=ConversationStore(running.library.catalog.engine),
            queues=GenerationQueues(settings),
            auth=auth,
        )
        app.state.kbchat = state
        workers = [
            Worker(running, state.jobs, busy=busy)
            for busy in [set[str]()]
            for _ in range(settings.server.workers)
        ]
        state.workers = workers
        _resume_pending(state)
        sweep_staged(running.library.catalog, settings)  # replacements whose task ended unseen
        await run_in_threadpool(running.file_chats)  # drops conversations' expired files
        if seed_sample:
            seed_sample_kb(state)
        if warm_up:
            warm_default_model(state)
        for worker in workers:
            worker.start()
        try:
            async with mcp.session_manager.run():
                yield
        finally:
            state.summary_jobs.cancel_all()
            state.jobs.close()
            for worker in workers:  # each ends its file in hand, unless a second Ctrl-C came
                wait_s = WORKER_STOP_WAIT_S
                if not await run_in_threadpool(worker.stop, wait_s, app.state.quit_now):
                    log.warning(
                        "worker %s: its task was left unfinished (waited at most %g s); it "
                        "runs again at the next start",
                        worker.owner,
                        wait_s,
                    )
            if own:
                running.close()

    # /docs and /redoc with their assets served from the fastapi-offline package, not a CDN
    app = FastAPIOffline(
        static_url="/docs-assets",
        title="kbchat",
        version=__version__,
        lifespan=lifespan,
        dependencies=[Depends(single_query_values)],
        description="Ask questions about your own documents: knowledge bases, "
        "search, chat with citations, and an OpenAI-compatible API.",
    )
    app.state.quit_now = threading.Event()  # set by a second Ctrl-C (server.shutdown)
    install_error_handlers(app)
    honest_openapi(app)
    document_streams(app)
    routers = [
        _system_router(),
        kb_api.router,
        sources_api.router,
        chat_api.router,
        conversations_api.router,
        agent_api.router,
        files_api.router,
        summary_api.router,
        openai_api.router,
        settings_api.router,
        models_api.router,
        openai_files.router,
    ]
    for router in routers:
        app.include_router(router)
    app.state.route_methods = route_methods(routers)
    if settings.server.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.server.cors_origins,
            allow_methods=["*"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(
        BodyLimit,
        json_bytes=settings.server.max_body_kb * 1024,
        upload_bytes=int(settings.server.max_request_mb * 2**20),
    )
    mount_mcp(app, mcp, settings, auth)
    app.add_middleware(AccessLog)  # added last: outermost, so it sees every response
    _mount_ui(app)
    return app


def single_query_values(request: Request) -> None:
    """Refuse a query parameter given twice: every one takes a single value, and silently
    using the last would ignore what the caller asked for (``?kb=a&kb=b``)."""
    keys = [key for key, _ in request.query_params.multi_items()]
    if repeated := sorted({key for key in keys if keys.count(key) > 1}):
        raise BadInput(f"query parameter {', '.join(repeated)} given more than once")


def _system_router() -> APIRouter:
    router = APIRouter(tags=["system"])

    @router.get("/api/health")
    def health(state: StateDep) -> Health:
        """Liveness and load: generation slots in use and waiting, jobs queued or running."""
        queues = state.queues.all()
        return Health(
            status="ok",
            version=__version__,
            generations=GenerationLoad(
                running=sum(q.running for q in queues),
                waiting=sum(q.waiting for q in queues),
                slots=sum(q.slots for q in queues),
                queue_size=state.settings.server.queue_size,
            ),
            jobs=state.jobs.unfinished(),
        )

    @router.get("/api/models", responses=documented(401))
    def models(state: StateDep, caller: CallerDep) -> list[ModelInfo]:
        """The configured chat models, with size, quantisation, context and memory estimate."""
        from kbchat.llm.inventory import model_entries

        entries = model_entries(state.settings)
        return [model_info(entry, public=True) for entry in entries]

    @router.get("/api/models/embedded", responses=documented(401))
    def embedded_models(state: StateDep, caller: CallerDep) -> list[EmbeddedModelInfo]:
        """The embedded models shipped on PyPI, installed or not, with how to add each."""
        from kbchat.llm.inventory import embedded_options

        return [embedded_model_info(option) for option in embedded_options(state.settings)]

    @router.get("/api/settings", responses=documented(401))
    def safe_settings(state: StateDep, caller: CallerDep) -> PublicSettings:
        """The settings a client may see: defaults and limits, never keys or secrets."""
        return public_settings(state.settings, state.auth.required)

    @router.get("/api/doctor", responses=documented(401, 403))
    def doctor(state: StateDep, caller: CallerDep) -> list[DoctorCheck]:
        """What is installed and usable (packages, models, data directory, config)."""
        from kbchat.doctor import run_checks

        caller.require(ALL_KBS, "admin")
        return [DoctorCheck.model_validate(asdict(check)) for check in run_checks(state.settings)]

    return router


def public_settings(settings: Settings, auth_required: bool) -> PublicSettings:
    """The safe subset of ``settings``: no API keys, hashes, URLs, paths or secrets (the
    public shapes exclude those fields)."""
    return PublicSettings.model_validate(
        {
            "version": __version__,
            "embedder": settings.embedder.model_dump(),
            "ingest": settings.ingest,
            "retrieval": settings.retrieval,
            "chat": settings.chat,
            "rerank": settings.rerank.model_dump(include={"backend", "threshold"}),
            "models": {
                name: m.model_dump(include={"backend", "model", "n_ctx", "parallel"})
                for name, m in settings.models.items()
            },
            "default_model": settings.default_model,
            "server": {**settings.server.model_dump(), "auth_required": auth_required},
            "file_types": sorted(ext.lstrip(".") for ext in supported_extensions()),
        }
    )


def _resume_pending(state: ServerState) -> None:
    """Queue again the files a stopped run left pending (killed or crashed mid-ingest).

    Their rows keep status ``pending`` with a note saying so until the job reaches them;
    a file that has gone since fails there with the reason. Re-adding a file that another
    process meanwhile indexed is a no-op (unchanged by hash). A knowledge base whose write
    lock another process holds (a ``kbchat kb add`` mid-way) is left alone: its pending files
    are that process's live work.
    """
    library = state.services.library
    catalog = library.catalog
    for record in catalog.list_kbs():
        pending = [f for f in catalog.list_files(record.id) if f.status == "pending"]
        if not pending or state.jobs.active(record.name):
            continue  # nothing left, or still queued: the job table kept it
        directory = library.settings.kb_root / str(record.id)
        lock = write_lock(directory)
        try:
            if directory.is_dir():  # else nobody on this machine ever wrote it
                lock.acquire(timeout=0)
        except Timeout:
            log.info(
                "knowledge base %r: %d pending file(s) are being written by another process "
                "(it holds the write lock); left to it",
                record.name,
                len(pending),
            )
            continue
        try:
            _queue_again(state, record.name, record.id, pending)
        finally:
            if lock.is_locked:
                lock.release()


def _queue_again(state: ServerState, kb: str, kb_id: int, pending: list[FileRecord]) -> None:
    catalog = state.services.library.catalog
    for file in pending:
        catalog.set_file_status(
            kb_id,
            file.name,
            path=file.path,
            status="pending",
            error=INTERRUPTED,
            sha256=file.sha256,
            size=file.size,
        )
    tasks = add_tasks([(f.name, Path(f.path), f.sha256) for f in pending], shared=False)
    job = state.jobs.submit(kb, "resume", tasks)
    log.warning(
        "%d file(s) of knowledge base %r were left pending by a stopped run; "
        "queued again in job %s",
        len(tasks),
        kb,
        job.id,
    )


def _mount_ui(app: FastAPI) -> None:
    try:
        from kbchat.server.ui import mount_ui
    except ModuleNotFoundError as exc:
        if exc.name != "kbchat.server.ui":
            raise
        log.info("web UI not installed; serving the API only")

        @app.get("/", include_in_schema=False)
        def index() -> dict[str, str]:
            return {"name": "kbchat", "docs": "/docs", "api": "/api/health"}

        return
    mount_ui(app)


class _BodyTooLarge(StarletteHTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(
            413,
            f"the request body is over the {_size(limit)} limit "
            "(server.max_body_kb, or server.max_request_mb for uploads)",
        )


class BodyLimit:
    """ASGI middleware: refuse bodies over the limit (413) before and while reading them."""

    def __init__(self, app: ASGIApp, *, json_bytes: int, upload_bytes: int) -> None:
        self.app = app
        self.json_bytes = json_bytes
        self.upload_bytes = upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        upload = scope["method"] == "POST" and _UPLOAD_PATH.match(scope["path"]) is not None
        limit = self.upload_bytes if upload else self.json_bytes
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await _refuse(send, _BodyTooLarge(limit), openai=scope["path"].startswith("/v1/"))
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge(limit)
            return message

        await self.app(scope, limited, send)


async def _refuse(send: Send, exc: StarletteHTTPException, *, openai: bool) -> None:
    problem = PayloadTooLarge(str(exc.detail))
    shape = openai_error_body(413, str(problem)) if openai else error_body(problem)
    body = json.dumps(shape).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _size(limit: int) -> str:
    return f"{limit / 2**20:g} MB" if limit >= 2**20 else f"{limit / 1024:g} KB"
