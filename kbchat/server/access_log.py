"""One log line per HTTP request: method, path, status, milliseconds, caller name.

The path is logged without its query string, and the caller by the API key's *name*
(``current_principal`` leaves it in the request state); headers are never logged.
"""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

CALLER_KEY = "caller"
"""Key in the ASGI scope's ``state`` under which the caller's name is left."""


class AccessLog:
    """ASGI middleware: logs each request once its response has been sent (or has failed).

    Streamed responses (SSE) are logged when the stream ends, so ``ms`` is the whole
    request; a request whose handler raised before responding is logged with status 500.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def recording(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording)
        finally:
            caller = scope.get("state", {}).get(CALLER_KEY)
            log.info(
                "request",
                extra={
                    "fields": {
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": status,
                        "ms": round((time.perf_counter() - started) * 1000, 1),
                        "caller": caller if caller is not None else "-",
                    }
                },
            )
