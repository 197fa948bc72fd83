"""Answers from a running ``kbchat serve`` (``ask``/``chat --server URL``): no model loads here.

The server's ``/api/chat`` streams SSE events (``kbchat.server.chat_api``): ``delta`` text,
``tool`` steps, then ``citations`` and ``done`` (the answer), or ``error``. They become the
same events a local answer yields (text, ``ToolStep``, ``Answer``), so the CLI prints both
the same way.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from typing import Any

import httpx
from httpx_sse import ServerSentEvent, connect_sse

from kbchat.errors import BackendError, KbchatError
from kbchat.shapes.chat import ChatAnswer, CitationInfo, ToolStepInfo
from kbchat.types import Answer, Citation, ToolStep, Usage

AgentEvent = str | ToolStep | Answer

CONNECT_TIMEOUT_S = 10.0


class ServerClient:
    """A client of one kbchat server's chat API.

    Args:
        url: the server's base URL, e.g. ``http://127.0.0.1:7860``.
        api_key: sent as ``Authorization: Bearer <key>`` when given.
        client: an httpx client to use (tests pass one); default: built here, no read
            timeout (an answer may wait in the server's queue), 10 s to connect.
    """

    def __init__(
        self, url: str, api_key: str | None = None, *, client: httpx.Client | None = None
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise BadServerUrl(f"--server (KBCHAT_SERVER) must be an http(s) URL, got {url!r}")
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = client or httpx.Client(
            timeout=httpx.Timeout(None, connect=CONNECT_TIMEOUT_S)
        )
        self._headers = headers
        self.conversation_id: str | None = None

    def close(self) -> None:
        self._client.close()

    def stream_answer(self, request: dict[str, Any]) -> Generator[AgentEvent, None, None]:
        """POST ``request`` (a ``ChatRequest``'s fields) and yield the answer's events.

        The conversation the server keeps is remembered in ``conversation_id``; pass it in
        the next request to continue it.

        Raises:
            KbchatError: the server is unreachable, refuses the key (401), does not know
                the route or a name in the request (404), or the answer failed; the
                message names the URL.
        """
        endpoint = f"{self.url}/api/chat"
        try:
            with connect_sse(
                self._client, "POST", endpoint, json=request, headers=self._headers
            ) as source:
                if source.response.status_code != 200:
                    source.response.read()
                    raise _refusal(endpoint, source.response)
                for sse in source.iter_sse():
                    event = self._event(endpoint, sse)
                    if event is not None:
                        yield event
        except httpx.TransportError as exc:
            raise BackendError(
                f"cannot reach the kbchat server at {self.url}: {_reason(exc)} "
                "(is `kbchat serve` running there?)"
            ) from None

    def _event(self, endpoint: str, sse: ServerSentEvent) -> AgentEvent | None:
        data = json.loads(sse.data) if sse.data else {}
        if sse.event == "delta":
            return str(data["text"])
        if sse.event == "tool":
            return tool_step(ToolStepInfo.model_validate(data))
        if sse.event == "done":
            done = ChatAnswer.model_validate(data)
            self.conversation_id = done.conversation_id
            return answer_from(done)
        if sse.event == "error":
            raise BackendError(f"{endpoint}: {_message(data)}")
        return None  # citations (repeated in done), and events of newer servers


class BadServerUrl(KbchatError):
    """The --server value is not an http(s) URL."""

    http_status = 400


def _refusal(endpoint: str, response: httpx.Response) -> KbchatError:
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    message = _message(body) if isinstance(body, dict) and "error" in body else None
    if status == 401:
        return KbchatError(
            f"{endpoint} answered 401: it needs an API key (--api-key or KBCHAT_API_KEY)"
            + (f"; {message}" if message else "")
        )
    if status == 404 and message is None:
        return KbchatError(f"{endpoint} answered 404: is this a kbchat server?")
    return KbchatError(f"{endpoint} answered {status}: {message or response.text[:200]}")


def _message(body: Any) -> str:
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and "message" in error:
        return str(error["message"])
    if isinstance(body, dict) and "detail" in body:
        return json.dumps(body["detail"], ensure_ascii=False)
    return json.dumps(body, ensure_ascii=False)


def _reason(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.ConnectError):
        return "connection refused or host unknown"
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    return str(exc) or type(exc).__name__


def _citation(info: CitationInfo) -> Citation:
    return Citation(**info.model_dump())


def tool_step(info: ToolStepInfo) -> ToolStep:
    return ToolStep(**info.model_dump())


def answer_from(info: ChatAnswer) -> Answer:
    """The ``Answer`` a server's ``done`` event describes (the inverse of ``answer_info``)."""
    return Answer(
        text=info.answer,
        model=info.model,
        citations=[_citation(c) for c in info.citations],
        usage=Usage(
            prompt_tokens=info.usage.prompt_tokens,
            completion_tokens=info.usage.completion_tokens,
        ),
        timings=info.timings,
        finish_reason=info.finish_reason,
        question=info.question,
        grounded=info.grounded,
        notices=info.notices,
        outcome=info.outcome,
        closest=[_citation(c) for c in info.closest],
        tool_steps=[tool_step(s) for s in info.tool_steps],
    )
