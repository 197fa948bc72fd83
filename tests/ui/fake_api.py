"""An in-memory stand-in for kbchat's REST API, for fast browser tests of the web page.

It follows the server's contract (JSON bodies, ``{"error": {"type", "message"}}`` errors with
real status codes, SSE for jobs and chat) and records what the page sent, so tests can check
both what the user sees and what reached the server.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.datastructures import UploadFile

from kbchat.server.ui import mount_ui

MODELS = [
    {"name": "qwen2.5-0.5b", "backend": "llamacpp", "default": True},
    {"name": "remote-large", "backend": "openai", "default": False},
]
SETTINGS = {
    "version": "0.1.0",
    "embedder": {"backend": "e5", "model": None, "base_url": None, "batch_size": 32},
    "ingest": {"chunk_size": 400, "chunk_overlap": 60, "max_file_mb": 100.0, "ocr": True},
    "retrieval": {"mode": "hybrid", "threshold": 0.25, "fusion": "weighted"},
    "chat": {"no_hit": "refuse", "no_hit_message": None, "temperature": 0.1, "max_tokens": 512},
    "default_model": "qwen2.5-0.5b",
}
DOCTOR = [
    {"name": "package faiss-cpu", "ok": True, "detail": "1.9.0 (vector index)", "optional": False},
    {
        "name": "package rapidocr-onnxruntime",
        "ok": False,
        "detail": "not installed; needed for OCR",
        "optional": True,
    },
    {"name": "catalog", "ok": False, "detail": "sqlite: database is locked", "optional": False},
]
ANSWER = "The warranty lasts **two years** [1]. Batteries are covered for six months [2]."
CITATIONS = [
    {
        "marker": 1,
        "kb": "manuals",
        "file": "warranty.pdf",
        "page": 3,
        "score": 0.82,
        "text": "Warranty. Every device is covered for two years from the date of purchase.",
        "quote": "covered for two years from the date of purchase",
    },
    {
        "marker": 2,
        "kb": "manuals",
        "file": "battery.md",
        "page": None,
        "score": 0.61,
        "text": "Batteries are consumables; they are covered for six months.",
        "quote": "",
    },
]


def error(status: int, kind: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"type": kind, "message": message}}, status_code=status)


def sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


@dataclass
class FakeState:
    """What the fake server holds, and what the page sent it."""

    api_key: str | None = None
    kbs: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    conversations: dict[str, dict[str, Any]] = field(default_factory=dict)
    chat_requests: list[dict[str, Any]] = field(default_factory=list)
    search_requests: list[dict[str, Any]] = field(default_factory=list)
    uploads: list[list[str]] = field(default_factory=list)
    cancelled_chats: int = 0
    delta_delay_s: float = 0.03
    first_delta_delay_s: float = 0.0
    queue_turn: threading.Event = field(default_factory=threading.Event)  # "queue" questions
    file_delay_s: float = 0.15
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def add_kb(self, name: str, description: str = "", files: dict[str, int] | None = None) -> None:
        self.kbs[name] = {
            "name": name,
            "description": description,
            "embedder": "e5-small-v1",
            "chunk_size": 400,
            "chunk_overlap": 60,
            "created_at": time.time(),
        }
        self.files[name] = {}
        for file, chunks in (files or {}).items():
            self.files[name][file] = file_json(file, "indexed", chunks=chunks, size=chunks * 300)

    def kb_json(self, name: str) -> dict[str, Any]:
        files = self.files[name].values()
        status: dict[str, int] = {}
        for f in files:
            status[f["status"]] = status.get(f["status"], 0) + 1
        return {
            **self.kbs[name],
            "files": len(files),
            "chunks": sum(f["chunks"] for f in files),
            "status": status,
        }


def file_json(
    name: str, status: str, *, chunks: int = 0, size: int = 0, error: str | None = None
) -> dict[str, Any]:
    return {
        "name": name,
        "path": f"/uploads/{name}",
        "status": status,
        "error": error,
        "chunks": chunks,
        "size": size,
        "sha256": "0" * 64,
        "updated_at": time.time(),
    }


def _outcome(name: str, size: int) -> dict[str, Any]:
    if name.endswith(".exe.pdf") or name.endswith(".bad"):
        return {
            "name": name,
            "path": name,
            "status": "failed",
            "chunks": 0,
            "error": f"{name}: not a supported document (looks like an executable)",
        }
    return {
        "name": name,
        "path": name,
        "status": "indexed",
        "chunks": max(1, size // 50),
        "error": None,
    }


def build_fake_app(state: FakeState) -> FastAPI:
    """A FastAPI app with the web page mounted and the REST API faked over ``state``."""
    app = FastAPI()
    mount_ui(app)

    @app.middleware("http")
    async def require_key(request: Request, call_next: Any) -> Response:
        wanted = f"Bearer {state.api_key}"
        if (
            state.api_key
            and request.url.path.startswith("/api/")
            and request.headers.get("authorization") != wanted
        ):
            return error(401, "Unauthorized", "a valid API key is required")
        response: Response = await call_next(request)
        return response

    _system_routes(app)
    _kb_routes(app, state)
    _job_routes(app, state)
    _chat_routes(app, state)
    return app


def _system_routes(app: FastAPI) -> None:
    app.get("/api/health")(lambda: {"status": "ok"})
    app.get("/api/models")(lambda: MODELS)
    app.get("/api/settings")(lambda: SETTINGS)
    app.get("/api/doctor")(lambda: DOCTOR)


def _kb_routes(app: FastAPI, state: FakeState) -> None:
    def missing(name: str) -> JSONResponse:
        return error(404, "NotFound", f"no knowledge base named {name!r}")

    @app.get("/api/kbs")
    def list_kbs() -> list[dict[str, Any]]:
        return [state.kb_json(name) for name in sorted(state.kbs)]

    @app.post("/api/kbs")
    async def create_kb(request: Request) -> Response:
        body = await request.json()
        name = str(body.get("name", ""))
        if not name or " " in name:
            return error(422, "BadInput", f"invalid knowledge base name {name!r}: no spaces")
        if name in state.kbs:
            return error(409, "Conflict", f"knowledge base {name!r} already exists")
        state.add_kb(name, body.get("description") or "")
        return JSONResponse(state.kb_json(name), status_code=201)

    @app.get("/api/kbs/{name}")
    def get_kb(name: str) -> Response:
        return JSONResponse(state.kb_json(name)) if name in state.kbs else missing(name)

    @app.delete("/api/kbs/{name}")
    def delete_kb(name: str) -> Response:
        if name not in state.kbs:
            return missing(name)
        del state.kbs[name], state.files[name]
        return Response(status_code=204)

    @app.get("/api/kbs/{name}/files")
    def list_files(name: str) -> Response:
        if name not in state.kbs:
            return missing(name)
        return JSONResponse(sorted(state.files[name].values(), key=lambda f: f["name"]))

    @app.delete("/api/kbs/{name}/files/{file:path}")
    def delete_file(name: str, file: str) -> Response:
        if file not in state.files.get(name, {}):
            return error(404, "NotFound", f"no file {file!r} in {name!r}")
        del state.files[name][file]
        return Response(status_code=204)

    @app.post("/api/kbs/{name}/files", status_code=202)
    async def upload(name: str, request: Request) -> Response:
        if name not in state.kbs:
            return missing(name)
        form = await request.form()
        uploads = [f for f in form.getlist("files") if isinstance(f, UploadFile)]
        state.uploads.append([f.filename or "" for f in uploads])
        outcomes = [_outcome(f.filename or "unnamed", len(await f.read())) for f in uploads]
        return _start_job(state, name, "add", outcomes)

    @app.post("/api/kbs/{name}/{action}", status_code=202)
    async def sync_or_rebuild(name: str, action: str) -> Response:
        if name not in state.kbs:
            return missing(name)
        if action not in ("sync", "rebuild"):
            return error(404, "NotFound", f"no action {action!r}")
        status = "unchanged" if action == "sync" else "indexed"
        outcomes = [{**f, "status": status} for f in state.files[name].values()]
        return _start_job(state, name, action, outcomes)

    @app.post("/api/search")
    async def search(request: Request) -> Response:
        body = await request.json()
        state.search_requests.append(body)
        if "nothing" in body["query"]:
            return JSONResponse({"hits": [], "notices": ["no passage scored above 0.25"]})
        hits = [
            {
                "kb": c["kb"],
                "file": c["file"],
                "page": c["page"],
                "text": c["text"],
                "score": c["score"],
                "headings": [],
            }
            for c in CITATIONS
        ]
        return JSONResponse({"hits": hits[: body.get("top_k", 5)], "notices": []})


def _start_job(state: FakeState, kb: str, kind: str, outcomes: list[dict[str, Any]]) -> Response:
    job_id = f"job-{next(state.ids)}"
    job = {
        "id": job_id,
        "kind": kind,
        "kb": kb,
        "status": "queued",
        "total": len(outcomes),
        "done": 0,
        "files": [],
        "error": None,
        "pending": outcomes,
    }
    state.jobs[job_id] = job

    async def work() -> None:
        job["status"] = "running"
        for outcome in outcomes:
            await asyncio.sleep(state.file_delay_s)
            job["files"].append(outcome)
            job["done"] += 1
            size = outcome.get("size") or outcome["chunks"] * 50
            state.files[kb][outcome["name"]] = file_json(
                outcome["name"],
                outcome["status"] if outcome["status"] != "unchanged" else "indexed",
                chunks=outcome["chunks"],
                size=size,
                error=outcome["error"],
            )
        job["status"] = "done"

    job["task"] = asyncio.get_running_loop().create_task(work())
    return JSONResponse({"job": _job_json(job)}, status_code=202)


def _job_json(job: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in job.items() if k not in ("pending", "task")}


def _job_routes(app: FastAPI, state: FakeState) -> None:
    @app.get("/api/jobs/{job_id}")
    def get_job(job_id: str) -> Response:
        if job_id not in state.jobs:
            return error(404, "NotFound", f"no job {job_id!r}")
        return JSONResponse(_job_json(state.jobs[job_id]))

    @app.get("/api/jobs/{job_id}/events")
    def job_events(job_id: str) -> Response:
        if job_id not in state.jobs:
            return error(404, "NotFound", f"no job {job_id!r}")
        job = state.jobs[job_id]

        async def events() -> AsyncIterator[str]:
            seen = -1
            while job["status"] not in ("done", "failed"):
                if job["done"] != seen:
                    seen = job["done"]
                    yield sse("progress", _job_json(job))
                await asyncio.sleep(0.02)
            yield sse("done", _job_json(job))

        return StreamingResponse(events(), media_type="text/event-stream")


def _chat_routes(app: FastAPI, state: FakeState) -> None:
    @app.post("/api/chat")
    async def chat(request: Request) -> Response:
        body = await request.json()
        state.chat_requests.append(body)
        if body.get("model") == "missing-model":
            return error(404, "NotFound", "no model named 'missing-model'")
        conversation_id = body.get("conversation_id") or f"c{next(state.ids)}"
        return StreamingResponse(
            _answer_events(state, body, conversation_id), media_type="text/event-stream"
        )

    @app.get("/api/conversations")
    def conversations() -> list[dict[str, Any]]:
        listed = sorted(state.conversations.values(), key=lambda c: -c["updated_at"])
        return [{k: v for k, v in c.items() if k != "messages"} for c in listed]

    @app.get("/api/conversations/{conversation_id}")
    def conversation(conversation_id: str) -> Response:
        if conversation_id not in state.conversations:
            return error(404, "NotFound", f"no conversation {conversation_id!r}")
        return JSONResponse(state.conversations[conversation_id])

    @app.delete("/api/conversations/{conversation_id}")
    def delete_conversation(conversation_id: str) -> Response:
        if state.conversations.pop(conversation_id, None) is None:
            return error(404, "NotFound", f"no conversation {conversation_id!r}")
        return Response(status_code=204)


async def _answer_events(
    state: FakeState, body: dict[str, Any], conversation_id: str
) -> AsyncIterator[str]:
    question = body["question"]
    grounded = bool(body.get("kbs"))
    text = ANSWER if grounded else "Hello! I am a plain chat model."
    if "slow" in question:
        text = " ".join(["word"] * 200)
    if "markup" in question:
        text = "<img src=x onerror=alert(1)> is shown as text; `code` too.\n\n- one\n- two"
    finished = False
    try:
        if "queue" in question:  # waits in line, as the real server's comment lines say
            yield ": queued position=2 eta_s=40\n\n"
            await asyncio.to_thread(state.queue_turn.wait, 30)
            yield ": queued position=0 eta_s=0\n\n"
        await asyncio.sleep(state.first_delta_delay_s)
        for word in text.split(" "):
            await asyncio.sleep(state.delta_delay_s * (5 if "slow" in question else 1))
            yield sse("delta", {"text": word + " "})
            if "boom" in question:
                yield sse(
                    "error",
                    {"error": {"type": "BackendError", "message": "the model server crashed"}},
                )
                finished = True
                return
        citations = CITATIONS if grounded else []
        yield sse("citations", {"citations": citations})
        conversation = state.conversations.setdefault(
            conversation_id,
            {
                "id": conversation_id,
                "title": question[:40],
                "kbs": body.get("kbs", []),
                "model": body.get("model"),
                "created_at": time.time(),
                "messages": [],
            },
        )
        conversation["updated_at"] = time.time()
        conversation["messages"] += [
            {"role": "user", "content": question},
            {"role": "assistant", "content": text.strip(), "citations": citations},
        ]
        yield sse(
            "done",
            {
                "answer": text.strip(),
                "citations": citations,
                "model": body.get("model"),
                "usage": {"prompt_tokens": 120, "completion_tokens": 17},
                "timings": {"ttft_s": 0.12, "total_s": 0.9},
                "grounded": grounded,
                "notices": [],
                "conversation_id": conversation_id,
            },
        )
        finished = True
    finally:
        if not finished:
            state.cancelled_chats += 1
