"""HTTP errors of the server and the one place where every error becomes a JSON response.

REST endpoints answer ``{"error": {"type": "NotFound", "message": "..."}}``; the
OpenAI-compatible ones (``/v1/...``) answer OpenAI's shape ``{"error": {"message",
"type", "code"}}``. The status is always the error class's own (never 200 with an error).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from kbchat.errors import (
    BadInput,
    ContextLengthExceeded,
    KbchatError,
    ServiceUnavailable,
    Unsupported,
)
from kbchat.server.schemas import PATTERN_RULES

log = logging.getLogger(__name__)


class Unauthorized(KbchatError):
    """No API key, or one the server does not know."""

    http_status = 401


class Forbidden(KbchatError):
    """The API key may not do this (to this knowledge base)."""

    http_status = 403


class PayloadTooLarge(KbchatError):
    """A request body or uploaded file is over the configured limit."""

    http_status = 413


class Busy(KbchatError):
    """Every generation slot and queue place is taken; retry after ``retry_after`` seconds."""

    http_status = 429

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(ServiceUnavailable):
    """The server cannot serve this now (queue wait timed out, shutting down)."""

    http_status = 503

    def __init__(self, message: str, *, retry_after: float = 5.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ErrorDetail(BaseModel):
    """What went wrong."""

    type: str = Field(description="The error's kind: NotFound, Forbidden, BadInput, Conflict...")
    message: str = Field(description="What went wrong, naming the file, field or setting at fault.")
    status: int = Field(description="The HTTP status of the response.")


class ErrorBody(BaseModel):
    """The body of every REST error response."""

    error: ErrorDetail


class OpenAIErrorDetail(BaseModel):
    """What went wrong, in OpenAI's shape."""

    message: str
    type: str = Field(description="invalid_request_error, authentication_error, ...")
    code: str | None = Field(description="invalid_api_key, model_not_found, ... or null.")
    param: str | None = None


class OpenAIErrorBody(BaseModel):
    """The body of every error response of the OpenAI-compatible API (``/v1``)."""

    error: OpenAIErrorDetail


_MEANINGS = {
    400: "A setting or backend the request names is unusable here.",
    401: "No API key, or an unknown one (keys are required beyond loopback).",
    403: "The API key may read this knowledge base but not do this.",
    404: "No such thing, or a knowledge base this API key may not read (the same answer).",
    409: "The request contradicts the current state (see the message).",
    413: "The request body or an uploaded file is over a server limit.",
    422: "The request is malformed or a value is out of range (the message names the field).",
    429: "Every generation slot and queue place is taken; retry after Retry-After seconds.",
    502: "A backend (remote model or embedding server) failed.",
    503: "No generation slot came free in time, or the server is shutting down; retry later.",
}
_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}}


def documented(*statuses: int, openai: bool = False) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the error statuses a route can answer."""
    model = OpenAIErrorBody if openai else ErrorBody
    responses: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {"model": model, "description": _MEANINGS[status]}
        if status in (429, 503):
            entry["headers"] = _RETRY_AFTER
        responses[status] = entry
    return responses


def honest_openapi(app: FastAPI) -> None:
    """Make ``app``'s OpenAPI document show the validation errors (422) it really sends.

    FastAPI documents its own ``HTTPValidationError`` body for every route with parameters;
    this server answers those in its error shape (``ErrorBody``, ``OpenAIErrorBody`` under
    ``/v1``), so the document says that instead; a ``BadRequestRoute`` answers them with 400
    (documented by the route itself), so its 422 goes.
    """
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = build()
        editors = {
            (route.path, method.lower())
            for route in app.routes
            if isinstance(route, BadRequestRoute)
            for method in route.methods or ()
        }
        for path, item in document.get("paths", {}).items():
            for method, operation in item.items():
                if (path, method) in editors:
                    operation.get("responses", {}).pop("422", None)
            body = "OpenAIErrorBody" if path.startswith("/v1/") else "ErrorBody"
            for operation in item.values():
                response = operation.get("responses", {}).get("422")
                if response is None:
                    continue
                content = response.setdefault("content", {}).setdefault("application/json", {})
                if content.get("schema", {}).get("$ref", "").endswith("/HTTPValidationError"):
                    content["schema"] = {"$ref": f"#/components/schemas/{body}"}
                    response["description"] = _MEANINGS[422]
        schemas = document.get("components", {}).get("schemas", {})
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
        for model in (ErrorBody, ErrorDetail, OpenAIErrorBody, OpenAIErrorDetail):
            schemas.setdefault(
                model.__name__,
                model.model_json_schema(ref_template="#/components/schemas/{model}"),
            )
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]


_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    501: "not_implemented",
    502: "api_error",
    503: "server_error",
}
_OPENAI_CODES = {401: "invalid_api_key", 404: "not_found", 429: "rate_limit_exceeded"}


def error_body(exc: KbchatError, status: int | None = None) -> dict[str, Any]:
    """The REST error JSON for ``exc`` (also the payload of an SSE ``error`` event)."""
    name = getattr(exc, "error_type", type(exc).__name__)
    return {"error": {"type": name, "message": str(exc), "status": status or exc.http_status}}


class BadRequestRoute(APIRoute):
    """A route of the page's editors (rename a conversation, rate an answer, change the
    settings): an invalid value is a 400 Bad Request whose message names the field, as a
    form shows it, rather than the 422 of the other REST routes."""


def _status(request: Request, exc: KbchatError) -> int:
    if exc.http_status == 422 and isinstance(request.scope.get("route"), BadRequestRoute):
        return 400
    return exc.http_status


def internal_error_body(exc: Exception) -> dict[str, Any]:
    """The error JSON for an unexpected exception (details stay in the server log)."""
    return error_body(_HTTPProblem(f"internal error: {type(exc).__name__}", 500, "InternalError"))


def openai_error_body(
    status: int, message: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    return {
        "error": {
            "message": message,
            "type": _OPENAI_TYPES.get(status, "api_error"),
            "code": code or _OPENAI_CODES.get(status),
            "param": param,
        }
    }


def openai_error(exc: KbchatError) -> tuple[int, dict[str, Any]]:
    """The status and OpenAI error body for ``exc``.

    Invalid requests are 400 (OpenAI's status, which its SDKs raise as BadRequestError),
    never 422; an over-long prompt has code ``context_length_exceeded``.
    """
    status = 400 if exc.http_status == 422 else exc.http_status
    param = getattr(exc, "param", None)
    code = None
    if isinstance(exc, ContextLengthExceeded):
        code, param = "context_length_exceeded", param or "messages"
    elif isinstance(exc, Unsupported):
        code = "unsupported_parameter" if param else "unsupported_value"
    elif status == 404 and "model" in str(exc):
        code, param = "model_not_found", param or "model"
    return status, openai_error_body(status, str(exc), code, param)


def error_response(request: Request, exc: KbchatError) -> JSONResponse:
    """The JSON response for ``exc`` in the shape the request's API speaks."""
    status = _status(request, exc)
    headers: dict[str, str] = {}
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if _is_openai(request):
        status, body = openai_error(exc)
        return JSONResponse(body, status, headers)
    return JSONResponse(error_body(exc, status), status, headers)


def install_error_handlers(app: FastAPI) -> None:
    """Map every exception to its JSON error response on ``app``."""

    async def kbchat_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, KbchatError)
        return error_response(request, exc)

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error_response(request, _validation_problem(exc))

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        message = str(exc.detail)
        if exc.status_code in (404, 405) and message in ("Not Found", "Method Not Allowed"):
            message = f"{message}: {request.method} {request.url.path}"
        problem: KbchatError = _HTTPProblem(message, exc.status_code)
        if exc.status_code == 400:  # the framework could not parse the body
            content_type = request.headers.get("content-type", "none")
            problem = BadInput(f"the request body cannot be read as {content_type}: {message}")
        response = error_response(request, problem)
        for key, value in (exc.headers or {}).items():
            response.headers[key] = value
        if exc.status_code == 405 and (allowed := _allowed_methods(request)):
            response.headers["Allow"] = ", ".join(allowed)
        return response

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error serving %s %s", request.method, request.url.path)
        problem = _HTTPProblem(f"internal error: {type(exc).__name__}", 500, "InternalError")
        return error_response(request, problem)

    app.add_exception_handler(KbchatError, kbchat_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)


class _HTTPProblem(KbchatError):
    """An error raised by the framework (unknown route, wrong method) or a crash."""

    def __init__(self, message: str, status: int, name: str | None = None) -> None:
        super().__init__(message)
        self.http_status = status
        self.error_type = name or _STATUS_NAMES.get(status, "HTTPError")


_STATUS_NAMES = {
    404: "NotFound",
    405: "MethodNotAllowed",
    400: "BadRequest",
    413: "PayloadTooLarge",
    401: "Unauthorized",
    403: "Forbidden",
}


def _validation_problem(exc: RequestValidationError) -> KbchatError:
    problems = []
    params = []
    for error in exc.errors()[:10]:
        if error.get("type") == "json_invalid":
            detail = (error.get("ctx") or {}).get("error", "JSON decode error")
            return BadInput(f"the request body is not valid JSON: {detail}")
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
        rule = PATTERN_RULES.get(str((error.get("ctx") or {}).get("pattern")))
        if error.get("type") == "extra_forbidden":
            problems.append(f"{where}: unknown or unsupported field")
        elif rule:
            problems.append(f"{where}: {rule}; got {error.get('input')!r}")
        else:
            message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
            problems.append(f"{where}: {message}")
        params.append(where)
    return BadInput("invalid request: " + "; ".join(problems), param=params[0] if params else None)


RouteMethods = list[tuple[re.Pattern[str], set[str]]]


def route_methods(routers: Iterable[APIRouter]) -> RouteMethods:
    """(path regex, methods) of every route of ``routers``, for the ``Allow`` header of 405s."""
    return [
        (route.path_regex, set(route.methods or ()))
        for router in routers
        for route in router.routes
        if isinstance(route, APIRoute)
    ]


def _allowed_methods(request: Request) -> list[str]:
    """Every method served at the request's path (Starlette names only the first route's)."""
    table: RouteMethods = getattr(request.app.state, "route_methods", [])
    path = request.scope["path"]
    return sorted({method for regex, methods in table if regex.match(path) for method in methods})


def _is_openai(request: Request) -> bool:
    return request.url.path.startswith("/v1/")
