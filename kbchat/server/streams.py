"""The events of every server-sent-event route, and their place in the OpenAPI document.

OpenAPI 3.1 has no way to describe a stream item by item, so each SSE route's 200
``text/event-stream`` response gets the schema of one event, as OpenAPI 3.2 describes
them: an object with the event's name (``event``) and its ``data``, a string whose
``contentSchema`` is the payload's JSON schema, one choice per event the route sends
(``oneOf``), with the payloads' models as components. On the wire each is ``event:
<name>`` and ``data: <payload as JSON>``; the OpenAI stream sends unnamed events
(``message``) ending with ``data: [DONE]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from fastapi import FastAPI
from pydantic import BaseModel, Field, TypeAdapter

from kbchat.server.errors import ErrorBody, OpenAIErrorBody
from kbchat.server.openai_responses import ChatCompletionChunk
from kbchat.shapes.chat import ChatAnswer, CitationInfo, FileSummary, SummaryInfo, ToolStepInfo
from kbchat.shapes.kb import JobInfo

EventPayload = type[BaseModel] | Any
"""A payload model, or a type (the OpenAI stream's ``[DONE]``)."""


class TextDelta(BaseModel):
    """The next piece of the answer's text."""

    text: str


class CitationsEvent(BaseModel):
    """The answer's sources, sent before ``done``."""

    citations: list[CitationInfo]


class SummaryFile(BaseModel):
    """A file's summary starts."""

    file: str


class SummaryProgress(BaseModel):
    """A step of a summary, with the plan's expected seconds."""

    file: str | None = Field(description="Null for the overview of the knowledge base.")
    stage: str = Field(description="plan, map, combine, refine or extract.")
    done: int
    total: int
    message: str
    estimated_s: float


class SummaryDelta(BaseModel):
    """The next piece of a summary's text."""

    file: str | None = Field(description="Null for the overview of the knowledge base.")
    text: str


class SummariesDone(BaseModel):
    """Every summary is done."""

    files: int = Field(description="Files summarised.")


CHAT_EVENTS: Mapping[str, EventPayload] = {
    "tool": ToolStepInfo,
    "delta": TextDelta,
    "citations": CitationsEvent,
    "done": ChatAnswer,
    "error": ErrorBody,
}
JOB_EVENTS: Mapping[str, EventPayload] = {"progress": JobInfo, "done": JobInfo, "error": ErrorBody}
SUMMARY_EVENTS: Mapping[str, EventPayload] = {
    "file": SummaryFile,
    "progress": SummaryProgress,
    "delta": SummaryDelta,
    "summary": FileSummary,
    "overview": SummaryInfo,
    "done": SummariesDone,
    "error": ErrorBody,
}
COMPLETION_EVENTS: Mapping[str, EventPayload] = {
    "message": ChatCompletionChunk | OpenAIErrorBody | Literal["[DONE]"]
}

STREAMS: Mapping[tuple[str, str], Mapping[str, EventPayload]] = {
    ("post", "/api/chat"): CHAT_EVENTS,
    ("get", "/api/jobs/{job_id}/events"): JOB_EVENTS,
    ("post", "/api/kbs/{name}/summary"): SUMMARY_EVENTS,
    ("post", "/v1/chat/completions"): COMPLETION_EVENTS,
}
"""(method, path) of every SSE route -> its events: name -> payload."""


def stream_schema(events: Mapping[str, EventPayload]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The JSON schema of one stream's events, and the component schemas it refers to."""
    choices: list[dict[str, Any]] = []
    components: dict[str, Any] = {}
    for name, payload in events.items():
        schema = TypeAdapter(payload).json_schema(
            mode="serialization", ref_template="#/components/schemas/{model}"
        )
        components.update(schema.pop("$defs", {}))
        if "$ref" not in schema and isinstance(payload, type) and issubclass(payload, BaseModel):
            components[payload.__name__] = schema
            schema = {"$ref": f"#/components/schemas/{payload.__name__}"}
        data = {"type": "string", "contentMediaType": "application/json", "contentSchema": schema}
        choices.append(
            {
                "type": "object",
                "title": f"{name} event",
                "properties": {"event": {"const": name}, "data": data},
                # An unnamed event is a "message" (the SSE standard).
                "required": ["data"] if name == "message" else ["event", "data"],
            }
        )
    return {"oneOf": choices}, components


def document_streams(app: FastAPI) -> None:
    """Give every SSE route of ``app`` its events' schema in the OpenAPI document (a route
    answering JSON too, such as ``/api/chat`` with ``stream: false``, keeps that schema)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = build()
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        for (method, path), events in STREAMS.items():
            operation = document["paths"].get(path, {}).get(method)
            if operation is None:
                continue
            schema, components = stream_schema(events)
            for name, component in components.items():
                schemas.setdefault(name, component)
            content = operation["responses"]["200"].setdefault("content", {})
            if content.get("application/json", {}).get("schema") == {}:
                del content["application/json"]  # FastAPI's placeholder: this route has no JSON
            content["text/event-stream"] = {"schema": schema}
        return document

    app.openapi = openapi  # type: ignore[method-assign]
