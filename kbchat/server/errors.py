"""HTTP errors of the server and the one place where every error becomes a JSON response.

REST endpoints answer ``{"error": {"type": "NotFound", "message": "..."}}``; the
OpenAI-compatible ones (``/v1/...``) answer OpenAI's shape ``{"error": {"message",
"type", "code"}}``. The status is always the error class's own (never 200 with an error).
"""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from kbchat.errors import BadInput, ContextLengthExceeded, KbchatError, Unsupported

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


class Unavailable(KbchatError):
    """The server cannot serve this now (queue wait timed out, shutting down)."""

    http_status = 503

    def __init__(self, message: str, *, retry_after: float = 5.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


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


def error_body(exc: KbchatError) -> dict[str, Any]:
    """The REST error JSON for ``exc`` (also the payload of an SSE ``error`` event)."""
    name = getattr(exc, "error_type", type(exc).__name__)
    return {"error": {"type": name, "message": str(exc), "status": exc.http_status}}


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
        code = "model_not_found"
    return status, openai_error_body(status, str(exc), code, param)


def error_response(request: Request, exc: KbchatError) -> JSONResponse:
    """The JSON response for ``exc`` in the shape the request's API speaks."""
    status = exc.http_status
    headers: dict[str, str] = {}
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if _is_openai(request):
        status, body = openai_error(exc)
        return JSONResponse(body, status, headers)
    return JSONResponse(error_body(exc), status, headers)


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
        problem = _HTTPProblem(message, exc.status_code)
        response = error_response(request, problem)
        for key, value in (exc.headers or {}).items():
            response.headers[key] = value
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
        if error.get("type") == "extra_forbidden":
            problems.append(f"{where}: unknown or unsupported field")
        else:
            problems.append(f"{where}: {error.get('msg', 'invalid')}")
        params.append(where)
    return BadInput("invalid request: " + "; ".join(problems), param=params[0] if params else None)


def _is_openai(request: Request) -> bool:
    return request.url.path.startswith("/v1/")
