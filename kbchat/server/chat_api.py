"""Chat endpoints: answers streamed as server-sent events, and stored conversations.

An answer runs on its own thread under a slot of its model's queue
(``kbchat.server.generation``). A request that fails before its first event (unknown KB,
prompt too long, model server down) gets a real error status unless it had to wait in
the queue; later failures become an ``error`` event. A client that goes away cancels
the generation.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    model_validator,
)

from kbchat.chat.files import answer_sources
from kbchat.chat.overview import overview_answer, overview_source
from kbchat.chat.plain import stream_chat
from kbchat.chat.rag import ChatOptions, stream_answer
from kbchat.errors import KbchatError, NotFound
from kbchat.kb.knowledge_base import KnowledgeBase
from kbchat.kb.library import is_temporary
from kbchat.llm.base import ChatModel
from kbchat.options import (
    MaxTokens,
    NoHit,
    NoHitMessage,
    Threshold,
    TopK,
    answer_search_options,
    chat_options,
    summary_options,
)
from kbchat.server.auth import Principal
from kbchat.server.errors import documented, error_body, internal_error_body
from kbchat.server.generation import start_generation, stream_generation
from kbchat.server.schemas import KBName
from kbchat.server.sse import ThreadedStream, sse_event, until_disconnected
from kbchat.server.state import ServerState, current_principal, find_kb, get_state
from kbchat.server.streams import CitationsEvent, TextDelta
from kbchat.shapes.chat import (
    ChatAnswer,
    answer_meta,
    chat_answer,
    citation_info,
    tool_step_info,
)
from kbchat.store.conversations import MESSAGE_ID_MAX, StoredMessage, new_conversation_id
from kbchat.types import Answer, Message, ToolStep

AgentEvent = str | ToolStep | Answer
"""Events of any answer: text deltas, tool steps (agent mode), then the Answer."""

router = APIRouter(tags=["chat"])

StateDep = Annotated[ServerState, Depends(get_state)]
CallerDep = Annotated[Principal, Depends(current_principal)]
log = logging.getLogger(__name__)


class ChatRequest(BaseModel):
    """A question, answered from knowledge bases (or by the model alone when ``kbs`` is empty)."""

    question: str = Field(..., min_length=1, max_length=20_000)
    kbs: list[KBName] = Field(default_factory=list, max_length=20)
    model: str | None = Field(None, max_length=128)
    conversation_id: str | None = Field(None, min_length=1, max_length=64)
    replace_from: int | None = Field(
        None,
        ge=1,
        le=MESSAGE_ID_MAX,
        description="Regenerate or edit: the id of a question of the conversation; it and "
        "every later message are replaced by this question and its answer (the history is "
        "what came before it). Needs conversation_id.",
    )
    top_k: TopK | None = None
    threshold: Threshold | None = None
    no_hit: NoHit | None = None
    no_hit_message: NoHitMessage | None = None
    max_tokens: MaxTokens | None = None
    mode: Literal["auto", "agent", "web"] = Field(
        "auto",
        description="auto: from kbs (or the model alone); agent: the model may use tools "
        "(kbs are what its search covers); web: answer from a web search.",
    )
    stream: StrictBool = True

    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        json_schema_extra={
            "if": {"properties": {"no_hit": {"const": "message"}}, "required": ["no_hit"]},
            "then": {
                "properties": {"no_hit_message": {"type": "string"}},
                "required": ["no_hit_message"],
            },
        },
    )

    @model_validator(mode="after")
    def _message_for_no_hit(self) -> ChatRequest:
        if self.no_hit == "message" and not self.no_hit_message:
            raise ValueError("no_hit 'message' needs no_hit_message in the same request")
        if self.replace_from is not None and self.conversation_id is None:
            raise ValueError("replace_from needs the conversation_id it belongs to")
        return self


@dataclass(slots=True)
class ChatPlan:
    """Everything resolved for one answer before any slot is taken."""

    model: ChatModel
    kbs: list[KnowledgeBase]
    question: str
    history: list[Message]
    options: ChatOptions
    conversation_id: str
    owner: str | None
    mode: Literal["auto", "agent", "web"] = "auto"
    model_name: str | None = None
    can_read: Callable[[str], bool] = lambda _: True
    replace_from: int | None = None
    stored: list[int] = field(default_factory=list)
    """The ids of the question and the answer, once stored."""


def plan_chat(state: ServerState, body: ChatRequest, caller: Principal) -> ChatPlan:
    """Resolve the model, knowledge bases, options and conversation history.

    Raises:
        NotFound: unknown model, knowledge base or conversation.
        Forbidden: never for reading: a knowledge base the caller may not read is NotFound.
    """
    names = list(dict.fromkeys(body.kbs))
    for name in names:
        find_kb(state, caller, name, "read")
    services = state.services
    model = services.models.get(body.model)
    kbs = [services.library.get(name) for name in names]
    search = answer_search_options(state.settings, top_k=body.top_k, threshold=body.threshold)
    options = chat_options(
        state.settings,
        search,
        no_hit=body.no_hit,
        no_hit_message=body.no_hit_message,
        max_tokens=body.max_tokens,
    )
    history: list[Message] = []
    conversation_id = body.conversation_id or new_conversation_id()
    if body.conversation_id:
        conversation = state.conversations.get(body.conversation_id, caller.name)
        if body.replace_from is not None:
            replaced = conversation.message(body.replace_from)
            if replaced.role != "user":
                raise NotFound(
                    f"conversation {body.conversation_id!r} has no question {body.replace_from} "
                    f"(replace_from must name a question; message {body.replace_from} is an "
                    "answer)"
                )
        history = conversation.history(before=body.replace_from)
        files_kb = services.file_chats().find(body.conversation_id, caller.name)
        kbs, options = answer_sources(
            kbs, files_kb, model, options, whole_tokens=state.settings.files.whole_file_tokens
        )
    return ChatPlan(
        model=model,
        kbs=kbs,
        question=body.question,
        history=history,
        options=options,
        conversation_id=conversation_id,
        owner=caller.name,
        mode=body.mode,
        model_name=body.model,
        can_read=lambda kb: caller.can(kb, "read"),
        replace_from=body.replace_from,
    )


def answer_events(
    state: ServerState, plan: ChatPlan, cancel: threading.Event
) -> Iterator[AgentEvent]:
    """The answer's events; the turn is stored before the finished Answer is yielded."""
    asked = time.time()
    summarised = overview_source(plan.kbs, plan.question)
    events: Iterator[AgentEvent]
    if plan.mode == "agent":
        from kbchat.chat.agent import stream_agent

        events = stream_agent(
            state.services,
            plan.question,
            model_name=plan.model_name,
            kbs=[kb.name for kb in plan.kbs],
            history=plan.history,
            can_read=plan.can_read,
            cancel=cancel,
        )
    elif plan.mode == "web":
        from kbchat.chat.web_chat import stream_web_answer, web_options

        events = stream_web_answer(
            state.services,
            plan.question,
            model_name=plan.model_name,
            history=plan.history,
            options=web_options(plan.options),
            cancel=cancel,
        )
    elif summarised is not None:
        summary = summary_options(state.settings, model=plan.model_name)
        events = overview_answer(
            plan.model, summarised, plan.question, options=summary, cancel=cancel
        )
    elif plan.kbs:
        events = stream_answer(
            plan.model,
            plan.kbs,
            plan.question,
            history=plan.history,
            options=plan.options,
            reranker=state.services.reranker(),
            cancel=cancel,
        )
    else:
        events = stream_chat(
            plan.model, plan.question, history=plan.history, options=plan.options, cancel=cancel
        )
    for event in events:
        if isinstance(event, Answer):
            citations = [asdict(c) for c in event.citations]
            turns = [
                StoredMessage("user", plan.question, asked),
                StoredMessage(
                    "assistant",
                    event.text,
                    time.time(),
                    citations,
                    answer_meta(event).model_dump(mode="json"),
                ),
            ]
            plan.stored = state.conversations.append(
                plan.conversation_id,
                plan.owner,
                turns,
                kbs=[kb.name for kb in plan.kbs if not is_temporary(kb.name)],
                model=plan.model.name,
                replace_from=plan.replace_from,
            )
        yield event


@router.post(
    "/api/chat",
    response_model=ChatAnswer,
    responses={
        200: {
            "description": "SSE events delta, citations, done (or error); JSON if stream=false",
            "content": {"text/event-stream": {}, "application/json": {}},
        },
        # 400: a setting the request relies on is unusable (web mode without a search provider)
        **documented(400, 401, 404, 413, 422, 429, 502, 503),
    },
)
async def chat(
    body: ChatRequest, request: Request, response: Response, state: StateDep, caller: CallerDep
) -> StreamingResponse | ChatAnswer:
    """Answer a question: SSE ``delta`` events, then ``citations`` and ``done`` (the answer).

    While it waits for the model, a streamed answer sends ``: queued position=<n>
    eta_s=<seconds>`` comment lines; see ``kbchat.server.generation``.
    """
    plan = await run_in_threadpool(plan_chat, state, body, caller)

    def make(cancel: threading.Event) -> Iterator[AgentEvent]:
        return answer_events(state, plan, cancel)

    if body.stream:
        return await stream_generation(
            request,
            state,
            make,
            model=body.model,
            caller=caller,
            render=lambda stream, first: _chat_stream(stream, first, plan),
            render_error=error_event,
        )
    stream, first = await start_generation(
        request, state, make, model=body.model, caller=caller, response=response
    )
    answer = first
    while not isinstance(answer, Answer) and answer is not None:
        answer = await stream.next(partial(until_disconnected, request))
    if answer is None:
        raise KbchatError("the answer ended without a result")
    return chat_answer(answer, plan.conversation_id, plan.stored)


async def _chat_stream(
    stream: ThreadedStream[AgentEvent], first: AgentEvent | None, plan: ChatPlan
) -> AsyncIterator[str]:
    event = first
    try:
        while event is not None:
            if isinstance(event, Answer):
                citations = [citation_info(c) for c in event.citations]
                yield sse_event("citations", CitationsEvent(citations=citations))
                yield sse_event("done", chat_answer(event, plan.conversation_id, plan.stored))
                return
            if isinstance(event, ToolStep):
                yield sse_event("tool", tool_step_info(event))
            else:
                yield sse_event("delta", TextDelta(text=event))
            event = await stream.next()
        yield sse_event("error", error_body(KbchatError("the answer ended without a result")))
    except Exception as exc:
        yield error_event(exc)
    finally:
        stream.close()


def error_event(exc: Exception) -> str:
    """The ``error`` event of a failed stream; a bug's details go to the log only."""
    if isinstance(exc, KbchatError):
        return sse_event("error", error_body(exc))
    log.error("answer stream failed", exc_info=exc)
    return sse_event("error", internal_error_body(exc))
