"""Holds the fake API to the real one: every response it sends must match kbchat's OpenAPI document.

``ContractCheck`` wraps the fake app (ASGI middleware). Each ``/api`` response is checked
against the document of the real app (``create_app``): the route must exist there, and the
JSON body or every server-sent event must match its documented schema strictly (no missing
and no extra fields). Problems are collected, and the ``fake_server`` fixture fails the test
on any, so the fake cannot drift from the API the page really talks to.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tests.server.openapi_check import OpenAPIContract


@cache
def real_contract() -> OpenAPIContract:
    """The OpenAPI document of the real server (its routes only: no services are built)."""
    from kbchat.config import load_settings
    from kbchat.server.app import create_app

    return OpenAPIContract(create_app(load_settings(embedder={"backend": "hash"})).openapi())


class ContractCheck:
    """ASGI middleware: checks every ``/api`` response of ``app``; problems go to ``problems``."""

    def __init__(self, app: ASGIApp, problems: list[str]) -> None:
        self.app = app
        self.problems = problems

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        contract = real_contract()
        if contract.operation(method, path) is None:
            self.problems.append(f"{method} {path}: the real API has no such route")
        response = _Response(contract, method, path, self.problems)

        async def checked(message: Message) -> None:
            response.feed(message)
            await send(message)

        await self.app(scope, receive, checked)


class _Response:
    """One response as it is sent: JSON checked whole, events checked one by one."""

    def __init__(self, contract: OpenAPIContract, method: str, path: str, problems: list[str]):
        self.contract = contract
        self.method = method
        self.path = path
        self.problems = problems
        self.status = 0
        self.media_type = ""
        self.body = b""

    def feed(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            headers = {k.decode().lower(): v.decode() for k, v in message.get("headers", [])}
            self.media_type = headers.get("content-type", "").split(";")[0]
            return
        if message["type"] != "http.response.body":
            return
        self.body += message.get("body", b"")
        if self.media_type == "text/event-stream":
            self._check_events()
        elif not message.get("more_body", False) and self.media_type == "application/json":
            self._check(self._json(self.body))

    def _check(self, body: Any) -> None:
        try:
            found = self.contract.check_json(self.method, self.path, self.status, body)
        except AssertionError as exc:
            found = [str(exc)]
        self.problems.extend(found)

    def _check_events(self) -> None:
        *complete, self.body = self.body.split(b"\n\n")
        for block in complete:
            lines = [ln for ln in block.decode().split("\n") if ln and not ln.startswith(":")]
            if not lines:
                continue
            name = next((ln[7:] for ln in lines if ln.startswith("event: ")), "message")
            data = "\n".join(ln[6:] for ln in lines if ln.startswith("data: "))
            event = (name, data if data == "[DONE]" else self._json(data.encode()))
            try:
                found = self.contract.check_events(self.method, self.path, [event])
            except AssertionError as exc:
                found = [str(exc)]
            self.problems.extend(found)

    def _json(self, raw: bytes) -> Any:
        try:
            return json.loads(raw)
        except ValueError:
            self.problems.append(f"{self.method} {self.path}: the body is not JSON: {raw[:80]!r}")
            return None
