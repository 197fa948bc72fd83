"""OpenAI-compatible endpoints: ``/v1/models``, ``/v1/chat/completions``, ``/v1/embeddings``.

Model ``kb:<name>`` answers from that knowledge base (the last user message is the
question, earlier turns are history, system messages are added to kbchat's own
instructions) and adds a ``citations`` field to the completion (to the last chunk when
streaming). Any other name is a configured chat model, given the messages as they are,
with ``response_format``, ``tools`` and the kbchat extension ``grammar`` where its backend
can honour them. Requests are read by ``server.openai_schemas``, which refuses what kbchat
cannot do; errors use OpenAI's shape (see ``server.errors``).
"""

from __future__ import annotations

import base64
import logging
import secrets
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import numpy as np
from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from kbchat.chat.overview import overview_answer, overview_source
from kbchat.chat.rag import stream_answer
from kbchat.embed.base import Embedder
from kbchat.errors import BadInput, KbchatError, NotFound, Unsupported
from kbchat.llm.base import FINISH_STOP, ChatModel, capabilities, check_structured, estimate_tokens
from kbchat.options import answer_search_options, chat_options, summary_options
from kbchat.registry import embedders
from kbchat.server.auth import Principal
from kbchat.server.errors import documented, openai_error, openai_error_body
from kbchat.server.files_api import FilePart, file_answer, take_file_parts
from kbchat.server.generation import start_generation, stream_generation
from kbchat.server.openai_files import uploaded_files
from kbchat.server.openai_responses import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChunkChoice,
    ChunkDelta,
    CompletionChoice,
    CompletionUsage,
    EmbeddingItem,
    EmbeddingList,
    EmbeddingUsage,
    FinishReason,
    FunctionCallOut,
    Grounding,
    ModelEntry,
    ModelList,
    ToolCallDelta,
    ToolCallOut,
)
from kbchat.server.openai_schemas import ChatCompletionRequest, EmbeddingRequest
from kbchat.server.sse import ThreadedStream, sse_data, until_disconnected
from kbchat.server.state import ServerState, current_principal, get_state
from kbchat.shapes.chat import citation_info, tool_step_info
from kbchat.types import Answer, Delta, Message, ToolCall, ToolStep, Usage

router = APIRouter(prefix="/v1", tags=["openai"])

StateDep = Annotated[ServerState, Depends(get_state)]
CallerDep = Annotated[Principal, Depends(current_principal)]
KB_PREFIX = "kb:"
AGENT_PREFIX = "agent:"
"""``agent:default`` (the built-in agent on the default model) or ``agent:<model>``."""
WEB_PREFIX = "web:"
"""``web:default`` (web search answered by the default model) or ``web:<model>``."""
log = logging.getLogger(__name__)


@dataclass(slots=True)
class Finished:
    """The end of a completion: why it stopped, tokens used, sources (kb models), tool calls."""

    finish_reason: str | None
    usage: Usage
    grounding: Grounding = field(default_factory=lambda: Grounding(citations=[]))
    """``citations``; kb models: ``outcome`` (answered, refused, fallback), ``grounded``,
    ``closest``."""
    tool_calls: list[ToolCall] = field(default_factory=list)


Piece = str | Finished


@router.get("/models", responses=documented(401, openai=True))
def list_models(state: StateDep, caller: CallerDep) -> ModelList:
    """Every chat model, ``kb:<name>`` for each readable knowledge base, ``agent:default``
    (``web:default`` when a web search is configured), and ``default``.

    Each entry says its ``owned_by`` (kbchat, or the host of a remote server), ``kind``
    (chat, kb or embedding) and ``context_length`` in tokens (kb models: the default chat
    model's; the embedder: null). ``default`` is the embedder new knowledge bases use;
    ``/v1/embeddings`` also takes a knowledge base's name or an embedder backend.
    """
    settings = state.settings
    data = [
        _model_entry(name, "chat", _owner(model.base_url), model.n_ctx, model.backend)
        for name, model in sorted(settings.models.items())
    ]
    default = settings.models.get(settings.default_model)
    kb_context = default.n_ctx if default is not None else None
    for record in state.services.library.catalog.list_kbs():
        if caller.can(record.name, "read"):
            ident, created = KB_PREFIX + record.name, int(record.created_at)
            data.append(_model_entry(ident, "kb", "kbchat", kb_context, "knowledge-base", created))
    default_context = default.n_ctx if default is not None else None
    data.append(_model_entry("agent:default", "agent", "kbchat", default_context, "agent"))
    for agent_name, profile in sorted(settings.agents.items()):
        used = settings.models.get(profile.model or settings.default_model)
        context = used.n_ctx if used is not None else None
        data.append(_model_entry(f"agent:{agent_name}", "agent", "kbchat", context, "agent"))
    if settings.web_search.providers:
        data.append(_model_entry("web:default", "web", "kbchat", default_context, "web-search"))
    embedder = state.services.library.default_embedder_spec()["backend"]
    data.append(_model_entry("default", "embedding", "kbchat", None, embedder))
    return ModelList(object="list", data=data)


def _model_entry(
    ident: str,
    kind: Literal["chat", "kb", "agent", "web", "embedding"],
    owner: str,
    context_length: int | None,
    backend: str,
    created: int = 0,
) -> ModelEntry:
    return ModelEntry(
        id=ident,
        object="model",
        created=created,
        owned_by=owner,
        kind=kind,
        context_length=context_length,
        backend=backend,
    )


def _owner(base_url: str | None) -> str:
    """Who serves a chat model: kbchat itself, or the host of its remote server."""
    return (urlsplit(base_url).hostname or base_url) if base_url else "kbchat"


@router.post(
    "/chat/completions",
    response_model=ChatCompletion,
    response_model_exclude_unset=True,
    responses=documented(400, 401, 404, 413, 422, 429, 502, 503, openai=True),
)
async def chat_completions(
    body: ChatCompletionRequest,
    request: Request,
    response: Response,
    state: StateDep,
    caller: CallerDep,
) -> StreamingResponse | ChatCompletion:
    """Chat completion; ``kb:<name>`` models answer from a knowledge base with citations.

    While it waits for the model, a stream sends ``: queued position=<n> eta_s=<seconds>``
    comment lines; see ``kbchat.server.generation``.
    """
    make = await run_in_threadpool(_plan, state, body, caller)
    ident = f"chatcmpl-{secrets.token_hex(12)}"
    model: str | None = body.model  # the queue: the model that answers
    if body.model.startswith((KB_PREFIX, AGENT_PREFIX, WEB_PREFIX)):
        rest = body.model.split(":", 1)[1]
        kb_model = body.model.startswith(KB_PREFIX)
        model = None if kb_model or rest not in state.settings.models else rest
    if body.stream:
        include_usage = bool((body.stream_options or {}).get("include_usage"))
        return await stream_generation(
            request,
            state,
            make,
            model=model,
            caller=caller,
            render=lambda stream, first: _chunks(stream, first, ident, body.model, include_usage),
            render_error=_error_chunk,
        )
    stream, first = await start_generation(
        request, state, make, model=model, caller=caller, response=response
    )
    parts: list[str] = []
    piece = first
    while piece is not None and not isinstance(piece, Finished):
        parts.append(piece)
        piece = await stream.next(partial(until_disconnected, request))
    finished = piece or Finished(FINISH_STOP, Usage())
    text = "".join(parts)
    message = AssistantMessage(role="assistant", content=text)
    if finished.tool_calls:
        message = AssistantMessage(
            role="assistant",
            content=text or None,
            tool_calls=[_call(c) for c in finished.tool_calls],
        )
    choice = CompletionChoice(
        index=0, message=message, finish_reason=_finish(finished.finish_reason), logprobs=None
    )
    return ChatCompletion(
        id=ident,
        object="chat.completion",
        created=int(time.time()),
        model=body.model,
        choices=[choice],
        usage=_usage(finished.usage),
        **finished.grounding.model_dump(exclude_unset=True),
    )


def _plan(state: ServerState, body: ChatCompletionRequest, caller: Principal) -> Any:
    """Check the request and resolve the model; returns the generation to run under a slot.

    File content parts are taken out first: the conversation's files are searched.

    Raises:
        Unsupported: a field kbchat or the model's backend cannot honour (HTTP 400).
    """
    body.refuse_unsupported()
    upload_bytes = int(state.settings.server.max_upload_mb * 2**20)
    store = uploaded_files(state)

    def uploaded(file_id: str) -> FilePart:
        record, data = store.content(caller.name, file_id)
        return FilePart(record.filename, data)

    files = take_file_parts([m.content for m in body.messages], upload_bytes, uploaded)
    messages = body.to_messages()
    max_tokens = body.max_completion_tokens or body.max_tokens
    if files:
        return _file_generation(state, body, caller, messages, max_tokens, files)
    if body.model.startswith(KB_PREFIX):
        return _kb_generation(state, body, caller, messages, max_tokens)
    if body.model.startswith((AGENT_PREFIX, WEB_PREFIX)):
        return _agent_generation(state, body, caller, messages, max_tokens)
    model = _chat_model(state, body.model, caller)
    structured: dict[str, Any] = {
        "response_format": body.to_response_format(),
        "grammar": body.grammar,
        "tools": body.to_tools(),
        "tool_choice": body.to_tool_choice(),
    }
    check_structured(body.model, capabilities(model), **structured)
    params: dict[str, Any] = {
        "temperature": body.temperature if body.temperature is not None else 0.7,
        "max_tokens": max_tokens or state.settings.chat.max_tokens,
        "stop": body.stop_sequences(),
    }
    # Only what was asked for is passed on, so that backends without these parameters
    # (third-party ChatModels written before them) serve plain requests as before.
    params.update({k: v for k, v in structured.items() if v and k != "tool_choice"})
    if structured["tools"]:
        params["tool_choice"] = structured["tool_choice"]
        params["parallel_tool_calls"] = body.parallel_tool_calls is not False

    def run(cancel: threading.Event) -> Iterator[Piece]:
        usage, finish, calls = Usage(), None, list[ToolCall]()
        for delta in model.stream(messages, cancel=cancel, **params):
            usage, finish = _track(delta, usage, finish)
            calls.extend(delta.tool_calls)
            if delta.text:
                yield delta.text
        yield Finished(finish, usage, tool_calls=calls)

    return run


def _chat_model(state: ServerState, name: str, caller: Principal) -> ChatModel:
    """The chat model ``name``; unknown: NotFound (param ``model``) naming every kind of
    model the caller may use, as ``/v1/models`` lists them. An embedding model's name (or a
    knowledge base's, which ``/v1/embeddings`` takes) says what it is and where it goes."""
    try:
        return state.services.models.get(name)
    except NotFound:
        readable = [n for n in state.services.library.catalog.kb_names() if caller.can(n, "read")]
        agents = [AGENT_PREFIX + n for n in ["default", *sorted(state.settings.agents)]]
        known = [*sorted(state.settings.models), *(KB_PREFIX + n for n in readable), *agents]
        chat = f"chat models: {', '.join(known)}"
        if name == "default" or set(name.split("+")) <= set(embedders.names()):
            raise NotFound(
                f"{name!r} is an embedding model: use it with /v1/embeddings; {chat}"
            ) from None
        if name in readable:
            raise NotFound(
                f"{name!r} is a knowledge base: ask it as model '{KB_PREFIX}{name}'; {chat}"
            ) from None
        raise NotFound(f"no model named {name!r}; known: {', '.join(known)}") from None


def _question(messages: list[Message]) -> str:
    """The user's question: the last message's text.

    Raises:
        BadInput: (param ``messages``) the last message is not the user's, or it is blank.
    """
    if messages[-1].role != "user":
        raise BadInput("the last message must be the user's question", param="messages")
    if not messages[-1].content.strip():
        raise BadInput("the last user message is empty: ask a question", param="messages")
    return messages[-1].content


def _kb_generation(
    state: ServerState,
    body: ChatCompletionRequest,
    caller: Principal,
    messages: list[Message],
    max_tokens: int | None,
) -> Any:
    name = body.model.removeprefix(KB_PREFIX)
    library = state.services.library
    if name not in library.catalog.kb_names() or not caller.can(name, "read"):
        raise NotFound(f"no model named {body.model!r}: there is no knowledge base {name!r}")
    asked = {
        "response_format": body.to_response_format() is not None,
        "tools": bool(body.tools),
        "tool_choice": body.to_tool_choice() != "auto",
        "grammar": body.grammar is not None,
    }
    for given in (name for name, wanted in asked.items() if wanted):
        raise Unsupported(
            f"{given} is not supported for {body.model}: knowledge-base models answer in "
            f"text with citations; use a chat model ({', '.join(state.settings.models)})",
            param=given,
        )
    question = _question(messages)
    kb = library.get(name)
    model = state.services.models.get(None)
    search = answer_search_options(state.settings, top_k=body.top_k, threshold=body.threshold)
    instructions = "\n\n".join(m.content for m in messages if m.role == "system" and m.content)
    options = chat_options(
        state.settings,
        search,
        max_tokens=max_tokens,
        temperature=body.temperature,
        stop=tuple(body.stop_sequences()),
        instructions=instructions,
    )
    history = [m for m in messages[:-1] if m.role in ("user", "assistant") and m.content]
    summarised = overview_source([kb], question)
    summary = summary_options(state.settings)

    def run(cancel: threading.Event) -> Iterator[Piece]:
        events = (
            overview_answer(model, summarised, question, options=summary, cancel=cancel)
            if summarised is not None
            else stream_answer(
                model,
                [kb],
                question,
                history=history,
                options=options,
                reranker=state.services.reranker(),
                cancel=cancel,
            )
        )
        for event in events:
            if isinstance(event, Answer):
                yield from _answer_end(event)
            else:
                yield event

    return run


def _agent_generation(
    state: ServerState,
    body: ChatCompletionRequest,
    caller: Principal,
    messages: list[Message],
    max_tokens: int | None,
) -> Any:
    """``agent:`` models: the agent with its tools over every knowledge base the caller may
    read; ``web:`` models: an answer from web search. Tool steps come back in the
    completion's ``tool_steps`` (kbchat's extension field); the answer's sources as
    ``citations``."""
    agent = body.model.startswith(AGENT_PREFIX)
    prefix = AGENT_PREFIX if agent else WEB_PREFIX
    name = body.model.removeprefix(prefix)
    profile = state.settings.agents.get(name) if agent else None
    model_name = profile.model if profile else None if name == "default" else name
    if profile is None and model_name is not None and model_name not in state.settings.models:
        named = [*(state.settings.agents if agent else {}), *state.settings.models]
        known = ", ".join(f"{prefix}{m}" for m in ["default", *named])
        raise NotFound(f"no model named {body.model!r}; known: {known}")
    for given, wanted in {
        "response_format": body.to_response_format() is not None,
        "tools": bool(body.tools),
        "grammar": body.grammar is not None,
    }.items():
        if wanted:
            raise Unsupported(
                f"{given} is not supported for {body.model}: it answers in text with its own "
                "tools and citations; use a chat model for your own tools",
                param=given,
            )
    question = _question(messages)
    history = [m for m in messages[:-1] if m.role in ("user", "assistant") and m.content]
    services = state.services

    def run(cancel: threading.Event) -> Iterator[Piece]:
        events: Iterator[str | ToolStep | Answer]
        if agent:
            from kbchat.chat.agent import stream_agent

            events = stream_agent(
                services,
                question,
                model_name=model_name,
                kbs=profile.kbs if profile else (),
                history=history,
                can_read=lambda kb: caller.can(kb, "read"),
                cancel=cancel,
                tool_names=profile.tools if profile else None,
            )
        else:
            from kbchat.chat.web_chat import stream_web_answer, web_options

            search = answer_search_options(state.settings)
            options = chat_options(state.settings, search, max_tokens=max_tokens)
            events = stream_web_answer(
                services,
                question,
                model_name=model_name,
                history=history,
                options=web_options(options),
                cancel=cancel,
            )
        for event in events:
            if isinstance(event, Answer):
                yield from _answer_end(event)
            elif isinstance(event, str):
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
                yield from _answer_end(event)
            else:
                yield event

    return run


def _answer_end(answer: Answer) -> Iterator[Piece]:
    """The end of a kb or file answer: for a refusal, the closest passages as text (plain
    OpenAI clients show only the message), then its sources and what it rests on."""
    if answer.outcome == "refused" and answer.closest:
        yield "\n" + "\n".join(
            f"- {c.file}{f' p.{c.page}' if c.page else ''} ({c.score:.2f}): {c.quote}"
            for c in answer.closest
        )
    yield Finished(
        answer.finish_reason,
        answer.usage,
        Grounding(
            citations=[citation_info(c) for c in answer.citations],
            outcome=answer.outcome,
            grounded=answer.grounded,
            closest=[citation_info(c) for c in answer.closest],
            tool_steps=[tool_step_info(s) for s in answer.tool_steps] or None,
            notices=list(answer.notices) or None,
        ),
    )


def _track(delta: Delta, usage: Usage, finish: str | None) -> tuple[Usage, str | None]:
    return delta.usage or usage, delta.finish_reason or finish


async def _chunks(
    stream: ThreadedStream[Piece], first: Piece | None, ident: str, model: str, include_usage: bool
) -> AsyncIterator[str]:
    created = int(time.time())

    def chunk(
        delta: ChunkDelta, finish: FinishReason | None = None, **extra: Any
    ) -> ChatCompletionChunk:
        choice = ChunkChoice(index=0, delta=delta, finish_reason=finish, logprobs=None)
        return ChatCompletionChunk(
            id=ident,
            object="chat.completion.chunk",
            created=created,
            model=model,
            choices=[choice],
            **extra,
        )

    piece = first
    try:
        yield sse_data(chunk(ChunkDelta(role="assistant", content="")))
        while isinstance(piece, str):
            yield sse_data(chunk(ChunkDelta(content=piece)))
            piece = await stream.next()
        finished = piece or Finished(FINISH_STOP, Usage())
        if finished.tool_calls:
            calls = [
                ToolCallDelta(index=i, **_call(c).model_dump())
                for i, c in enumerate(finished.tool_calls)
            ]
            yield sse_data(chunk(ChunkDelta(tool_calls=calls)))
        grounding = finished.grounding.model_dump(exclude_unset=True)
        yield sse_data(chunk(ChunkDelta(), _finish(finished.finish_reason), **grounding))
        if include_usage:
            usage = ChatCompletionChunk(
                id=ident,
                object="chat.completion.chunk",
                created=created,
                model=model,
                choices=[],
                usage=_usage(finished.usage),
            )
            yield sse_data(usage)
        yield sse_data("[DONE]")
    except Exception as exc:
        yield _error_chunk(exc)
    finally:
        stream.close()


def _error_chunk(exc: Exception) -> str:
    """The error chunk of a failed stream; a bug's details go to the log only."""
    if isinstance(exc, KbchatError):
        return sse_data(openai_error(exc)[1])
    log.error("completion stream failed", exc_info=exc)
    return sse_data(openai_error_body(500, f"internal error: {type(exc).__name__}"))


def _call(call: ToolCall) -> ToolCallOut:
    return ToolCallOut(
        id=call.id,
        type="function",
        function=FunctionCallOut(name=call.name, arguments=call.arguments),
    )


def _finish(reason: str | None) -> FinishReason:
    known: dict[str | None, FinishReason] = {"length": "length", "tool_calls": "tool_calls"}
    return known.get(reason, "stop")


def _usage(usage: Usage) -> CompletionUsage:
    return CompletionUsage(
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        total_tokens=usage.total_tokens,
    )


@router.post("/embeddings", responses=documented(400, 401, 404, 413, 422, 502, openai=True))
def embeddings(body: EmbeddingRequest, state: StateDep, caller: CallerDep) -> EmbeddingList:
    """Embed texts with the default embedder, a knowledge base's, or a named backend."""
    texts = _texts(body.input)
    embedder = _embedder(state, body.model, caller)
    if body.dimensions is not None and body.dimensions != embedder.dim:
        raise Unsupported(
            f"{embedder.name} makes {embedder.dim}-dimensional vectors and cannot shorten "
            f"them; dimensions={body.dimensions} is not supported (omit it)",
            param="dimensions",
        )
    vectors = np.asarray(
        embedder.embed_batch(texts, is_query=body.input_type == "query"), dtype=np.float32
    )
    tokens = sum(estimate_tokens(t) for t in texts)
    data = [
        EmbeddingItem(object="embedding", index=i, embedding=_encode(v, body.encoding_format))
        for i, v in enumerate(vectors)
    ]
    return EmbeddingList(
        object="list",
        data=data,
        model=embedder.name,
        usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens),
    )


def _texts(given: str | list[str] | list[int] | list[list[int]]) -> list[str]:
    """The texts to embed: strings as given, token ids (one list, or a list per text)
    decoded with cl100k_base (``kbchat.embed.token_ids``)."""
    from kbchat.embed.token_ids import decode_token_ids

    if isinstance(given, str):
        return [given]
    if not given:
        raise BadInput("input must not be empty", param="input")
    if all(isinstance(t, str) for t in given):
        return [t for t in given if isinstance(t, str)]
    if all(isinstance(t, int) for t in given):
        return [decode_token_ids([t for t in given if isinstance(t, int)])]
    rows = [t for t in given if isinstance(t, list)]
    if len(rows) != len(given) or not all(rows):
        raise BadInput("input must be strings or non-empty lists of token ids", param="input")
    return [decode_token_ids(row) for row in rows]


def _embedder(state: ServerState, model: str, caller: Principal) -> Embedder:
    """``default``, a knowledge base (its own embedder), or a backend: e5, use, e5+use..."""
    library = state.services.library
    if model == "default":
        return library.embedder(library.default_embedder_spec())
    name = model.removeprefix(KB_PREFIX)
    if name in library.catalog.kb_names() and caller.can(name, "read"):
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
