"""OpenAI-compatible endpoints: ``/v1/models``, ``/v1/chat/completions``, ``/v1/embeddings``.

Model ``kb:<name>`` answers from that knowledge base (the last user message is the
question, earlier turns are history) and adds a ``citations`` field to the completion
(to the last chunk when streaming). Any other name is a configured chat model, given
the messages as they are. Errors use OpenAI's shape (see ``server.errors``).
"""

from __future__ import annotations

import base64
import logging
import secrets
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict, dataclass, field
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from kbchat.chat.rag import stream_answer
from kbchat.embed.base import Embedder
from kbchat.errors import BadInput, KbchatError, NotFound
from kbchat.llm.base import FINISH_STOP, estimate_tokens
from kbchat.options import answer_search_options, chat_options
from kbchat.registry import embedders
from kbchat.server.auth import Principal
from kbchat.server.chat_api import start_generation
from kbchat.server.errors import openai_error_body
from kbchat.server.files_api import FilePart, file_answer, take_file_parts
from kbchat.server.sse import SSE_HEADERS, ThreadedStream, sse_data
from kbchat.server.state import ServerState, current_principal, get_state
from kbchat.types import Answer, Delta, Message, Usage

router = APIRouter(prefix="/v1", tags=["openai"])

StateDep = Annotated[ServerState, Depends(get_state)]
CallerDep = Annotated[Principal, Depends(current_principal)]
KB_PREFIX = "kb:"
log = logging.getLogger(__name__)


class ChatMessage(BaseModel):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None


class ChatCompletionRequest(BaseModel):
    """OpenAI's chat completion request (the fields kbchat uses; others are ignored)."""

    model: str = Field(..., min_length=1, max_length=200)
    messages: list[ChatMessage] = Field(..., min_length=1, max_length=500)
    stream: bool = False
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1, le=32_768)
    max_completion_tokens: int | None = Field(None, ge=1, le=32_768)
    stop: str | list[str] | None = None
    stream_options: dict[str, Any] | None = None
    top_k: int | None = Field(None, ge=1, le=50, description="kb models: passages retrieved.")
    threshold: float | None = Field(None, ge=0, le=1, description="kb models: min relevance.")


class EmbeddingRequest(BaseModel):
    """OpenAI's embeddings request; ``model`` is ``default`` or a knowledge base name."""

    input: str | list[Annotated[str, Field(max_length=50_000)]] = Field(..., max_length=2048)
    model: str = Field("default", max_length=200)
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1)
    input_type: Literal["query", "passage"] = Field(
        "passage", description="kbchat extension: embed as search queries or as passages."
    )


@dataclass(slots=True)
class Finished:
    """The end of a completion: why it stopped, tokens used, and sources (kb models)."""

    finish_reason: str | None
    usage: Usage
    citations: list[dict[str, Any]] = field(default_factory=list)


Piece = str | Finished


@router.get("/models")
def list_models(state: StateDep, caller: CallerDep) -> dict[str, Any]:
    """Every configured chat model, plus ``kb:<name>`` for each readable knowledge base."""
    settings = state.settings
    data = [
        {
            "id": name,
            "object": "model",
            "created": 0,
            "owned_by": "kbchat",
            "backend": settings.models[name].backend,
        }
        for name in sorted(settings.models)
    ]
    for record in state.services.library.catalog.list_kbs():
        if caller.can(record.name, "read"):
            data.append(
                {
                    "id": KB_PREFIX + record.name,
                    "object": "model",
                    "created": int(record.created_at),
                    "owned_by": "kbchat",
                    "backend": "knowledge-base",
                }
            )
    return {"object": "list", "data": data}


@router.post("/chat/completions", response_model=None)
async def chat_completions(
    body: ChatCompletionRequest, request: Request, state: StateDep, caller: CallerDep
) -> StreamingResponse | dict[str, Any]:
    """Chat completion; ``kb:<name>`` models answer from a knowledge base with citations."""
    make = await run_in_threadpool(_plan, state, body, caller)
    stream, first = await start_generation(request, state, make)
    ident = f"chatcmpl-{secrets.token_hex(12)}"
    if body.stream:
        include_usage = bool((body.stream_options or {}).get("include_usage"))
        return StreamingResponse(
            _chunks(stream, first, ident, body.model, include_usage),
            media_type="text/event-stream",
            headers=SSE_HEADERS,
        )
    parts: list[str] = []
    piece = first
    while piece is not None and not isinstance(piece, Finished):
        parts.append(piece)
        piece = await stream.next(gone=request.is_disconnected)
    finished = piece or Finished(FINISH_STOP, Usage())
    return {
        "id": ident,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "".join(parts)},
                "finish_reason": _finish(finished.finish_reason),
                "logprobs": None,
            }
        ],
        "usage": _usage(finished.usage),
        "citations": finished.citations,
    }


def _plan(state: ServerState, body: ChatCompletionRequest, caller: Principal) -> Any:
    """Resolve the model and messages; returns the generation to run under a slot."""
    upload_bytes = int(state.settings.server.max_upload_mb * 2**20)
    files = take_file_parts([m.content for m in body.messages], upload_bytes)
    messages = [Message(_role(m.role), _text(m.content)) for m in body.messages]
    max_tokens = body.max_completion_tokens or body.max_tokens
    if files:
        return _file_generation(state, body, caller, messages, max_tokens, files)
    if body.model.startswith(KB_PREFIX):
        return _kb_generation(state, body, caller, messages, max_tokens)
    model = state.services.models.get(body.model)
    stop = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
    temperature = body.temperature if body.temperature is not None else 0.7
    limit = max_tokens or state.settings.chat.max_tokens

    def run(cancel: threading.Event) -> Iterator[Piece]:
        usage, finish = Usage(), None
        for delta in model.stream(
            messages, temperature=temperature, max_tokens=limit, stop=stop, cancel=cancel
        ):
            usage, finish = _track(delta, usage, finish)
            if delta.text:
                yield delta.text
        yield Finished(finish, usage)

    return run


def _kb_generation(
    state: ServerState,
    body: ChatCompletionRequest,
    caller: Principal,
    messages: list[Message],
    max_tokens: int | None,
) -> Any:
    name = body.model.removeprefix(KB_PREFIX)
    library = state.services.library
    if name not in library.catalog.kb_names():
        raise NotFound(f"no model named {body.model!r}: there is no knowledge base {name!r}")
    caller.require(name, "read")
    if messages[-1].role != "user":
        raise BadInput("the last message must be the user's question")
    kb = library.get(name)
    model = state.services.models.get(None)
    search = answer_search_options(state.settings, top_k=body.top_k, threshold=body.threshold)
    options = chat_options(
        state.settings, search, max_tokens=max_tokens, temperature=body.temperature
    )
    history = [m for m in messages[:-1] if m.role in ("user", "assistant")]

    def run(cancel: threading.Event) -> Iterator[Piece]:
        for event in stream_answer(
            model,
            [kb],
            messages[-1].content,
            history=history,
            options=options,
            reranker=state.services.reranker(),
            cancel=cancel,
        ):
            if isinstance(event, Answer):
                yield Finished(
                    event.finish_reason, event.usage, [asdict(c) for c in event.citations]
                )
            else:
                yield event

    return run


def _file_generation(
    state: ServerState,
    body: ChatCompletionRequest,
    caller: Principal,
    messages: list[Message],
    max_tokens: int | None,
    files: list[FilePart],
) -> Any:
    """Files in the messages: answer from them (and from ``kb:<name>``'s knowledge base)."""
    is_kb = body.model.startswith(KB_PREFIX)
    search = answer_search_options(state.settings, top_k=body.top_k, threshold=body.threshold)
    options = chat_options(
        state.settings, search, max_tokens=max_tokens, temperature=body.temperature
    )
    events = file_answer(
        state,
        caller,
        files,
        model_name=state.settings.default_model if is_kb else body.model,
        kb_names=[body.model.removeprefix(KB_PREFIX)] if is_kb else [],
        messages=messages,
        options=options,
    )

    def run(cancel: threading.Event) -> Iterator[Piece]:
        for event in events(cancel):
            if isinstance(event, Answer):
                yield Finished(
                    event.finish_reason, event.usage, [asdict(c) for c in event.citations]
                )
            else:
                yield event

    return run


def _track(delta: Delta, usage: Usage, finish: str | None) -> tuple[Usage, str | None]:
    return delta.usage or usage, delta.finish_reason or finish


async def _chunks(
    stream: ThreadedStream[Piece], first: Piece | None, ident: str, model: str, include_usage: bool
) -> AsyncIterator[str]:
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        return sse_data(
            {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [choice],
                **extra,
            }
        )

    piece = first
    try:
        yield chunk({"role": "assistant", "content": ""})
        while isinstance(piece, str):
            yield chunk({"content": piece})
            piece = await stream.next()
        finished = piece or Finished(FINISH_STOP, Usage())
        yield chunk({}, _finish(finished.finish_reason), citations=finished.citations)
        if include_usage:
            yield sse_data(
                {
                    "id": ident,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [],
                    "usage": _usage(finished.usage),
                }
            )
        yield sse_data("[DONE]")
    except KbchatError as exc:
        yield sse_data(openai_error_body(exc.http_status, str(exc)))
    except Exception as exc:  # a bug mid-stream: say so in the stream, details in the log
        log.exception("completion stream failed")
        yield sse_data(openai_error_body(500, f"internal error: {type(exc).__name__}"))
    finally:
        stream.close()


def _finish(reason: str | None) -> str:
    return reason if reason in ("stop", "length") else "stop"


def _usage(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


def _role(role: str) -> Literal["system", "user", "assistant", "tool"]:
    if role == "developer":
        return "system"
    return role  # type: ignore[return-value]


def _text(content: str | list[dict[str, Any]] | None) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    parts = []
    for part in content:
        if part.get("type") != "text" or not isinstance(part.get("text"), str):
            raise BadInput(f"only text message parts are supported, got {part.get('type')!r}")
        parts.append(part["text"])
    return "".join(parts)


@router.post("/embeddings")
def embeddings(body: EmbeddingRequest, state: StateDep, caller: CallerDep) -> dict[str, Any]:
    """Embed texts with the default embedder or a knowledge base's (``model``: its name)."""
    texts = [body.input] if isinstance(body.input, str) else body.input
    if not texts:
        raise BadInput("input must not be empty")
    embedder = _embedder(state, body.model, caller)
    if body.dimensions is not None and body.dimensions != embedder.dim:
        raise BadInput(
            f"{embedder.name} makes {embedder.dim}-dimensional vectors; "
            f"dimensions={body.dimensions} is not supported"
        )
    vectors = np.asarray(
        embedder.embed_batch(texts, is_query=body.input_type == "query"), dtype=np.float32
    )
    tokens = sum(estimate_tokens(t) for t in texts)
    data = [
        {"object": "embedding", "index": i, "embedding": _encode(v, body.encoding_format)}
        for i, v in enumerate(vectors)
    ]
    return {
        "object": "list",
        "data": data,
        "model": embedder.name,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def _embedder(state: ServerState, model: str, caller: Principal) -> Embedder:
    """``default``, a knowledge base (its own embedder), or a backend: e5, use, e5+use..."""
    library = state.services.library
    if model == "default":
        return library.embedder(library.default_embedder_spec())
    name = model.removeprefix(KB_PREFIX)
    if name in library.catalog.kb_names():
        caller.require(name, "read")
        return library.get(name).embedder
    backends = set(embedders.names())
    if not model.startswith(KB_PREFIX) and set(model.split("+")) <= backends:
        return library.embedder(library.default_embedder_spec(model))
    raise NotFound(
        f"no embedding model named {model!r}: use 'default', a knowledge base name or an "
        f"embedder backend ({', '.join(sorted(backends))}, or several joined by '+')"
    )


def _encode(vector: np.ndarray, encoding: str) -> list[float] | str:
    if encoding == "base64":
        return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
    return [float(x) for x in vector]
