"""Chat with any OpenAI-compatible server (vLLM, Ollama, llama.cpp, Xinference, ...).

Speaks ``POST {base_url}/chat/completions`` with ``stream: true`` and reads the
server-sent events. ``response_format``, ``tools``, ``tool_choice`` and
``parallel_tool_calls`` are passed through (the server decides; a grammar is refused).
A request the server refuses (400, 422) becomes ``BadInput`` quoting it, one too long for
its context ``ContextLengthExceeded``; other failures become ``BackendError`` naming the
URL and quoting the server. Connection failures, 429 and 5xx are retried per
``kbchat.remote.RetryPolicy`` (backoff or the server's Retry-After), but only before the
first token, so an answer is never repeated. The API key is sent, never logged.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
from pydantic import SecretStr

from kbchat.errors import BackendError, BadInput, ConfigError, ContextLengthExceeded
from kbchat.llm.base import (
    CAN_RESPONSE_FORMAT,
    CAN_TOOLS,
    FINISH_CANCELLED,
    FINISH_STOP,
    FINISH_TOOL_CALLS,
    ResponseFormat,
    ToolChoice,
    check_params,
    check_structured,
    estimate_prompt_tokens,
    estimate_tokens,
)
from kbchat.llm.wire import (
    ChunkReader,
    message_dict,
    response_format_dict,
    tool_choice_value,
    tool_dict,
)
from kbchat.remote import (
    RETRY_STATUS,
    RetryPolicy,
    bearer,
    describe,
    error_code,
    retry_after,
    server_message,
)
from kbchat.types import Delta, Message, ToolSpec, Usage

log = logging.getLogger(__name__)

_MAX_CONNECT_TIMEOUT_S = 10.0
_ERROR_EXCERPT = 500


class OpenAIChatModel:
    """A chat model behind an OpenAI-compatible ``/v1/chat/completions`` endpoint.

    Args:
        base_url: The API root, e.g. ``http://127.0.0.1:8000/v1``.
        model: The model name on the server.
        api_key: Sent as a bearer token when given.
        timeout_s: Read timeout (longest silence between two chunks) and overall bound
            for connecting (at most 10 s).
        max_retries: Retries on connection errors, 429 and 5xx before the first token.
        n_ctx: The model's context window, for callers' budgets.
        client: An httpx client to use (e.g. with a mock transport); default: a new one.
        name: The name clients use; default: ``model``.
        backoff_s: First retry delay; doubles each retry (a server's Retry-After wins).

    Raises:
        ConfigError: ``base_url`` or ``model`` is missing or malformed.
    """

    capabilities = frozenset({CAN_RESPONSE_FORMAT, CAN_TOOLS})

    def __init__(
        self,
        *,
        base_url: str | None,
        model: str | None,
        api_key: SecretStr | str | None = None,
        timeout_s: float = 120,
        max_retries: int = 2,
        n_ctx: int = 4096,
        client: httpx.Client | None = None,
        name: str | None = None,
        backoff_s: float = 0.5,
        **_: object,
    ) -> None:
        if not base_url or not base_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"the openai chat model needs base_url as http(s)://host:port/v1, got {base_url!r}"
            )
        if not model:
            raise ConfigError("the openai chat model needs the model name on the server (model)")
        for label, value, low in (("timeout_s", timeout_s, 0), ("n_ctx", n_ctx, 0)):
            if value <= low:
                raise ValueError(f"{label} must be > {low}, got {value}")
        self.retry = RetryPolicy(max_retries, backoff_s)
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.name = name or model
        self.context_window = n_ctx
        self._api_key = SecretStr(api_key) if isinstance(api_key, str) else api_key
        self._timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, _MAX_CONNECT_TIMEOUT_S))
        self._owns_client = client is None
        self._client = client or httpx.Client()

    def __repr__(self) -> str:
        return f"OpenAIChatModel(url={self.url!r}, model={self.model!r})"

    def count_tokens(self, text: str) -> int:
        """Estimated tokens (the server's tokenizer is not reachable in general)."""
        return estimate_tokens(text)

    def stream(
        self,
        messages: Sequence[Message],
        *,
        temperature: float = 0.2,
        max_tokens: int = 512,
        stop: Sequence[str] = (),
        cancel: threading.Event | None = None,
        response_format: ResponseFormat | None = None,
        grammar: str | None = None,
        tools: Sequence[ToolSpec] = (),
        tool_choice: ToolChoice = "auto",
        parallel_tool_calls: bool = True,
    ) -> Iterator[Delta]:
        """Stream the answer; see ``kbchat.llm.base.ChatModel.stream``."""
        check_params(temperature, max_tokens, stop)
        check_structured(
            self.name,
            self.capabilities,
            response_format=response_format,
            grammar=grammar,
            tools=tools,
            tool_choice=tool_choice,
        )
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [message_dict(m) for m in messages],
            "stream": True,
            "stream_options": {"include_usage": True},
            "temperature": temperature,
            "max_tokens": max_tokens,
        }
        if stop:
            body["stop"] = list(stop)
        if response_format is not None and response_format.type != "text":
            body["response_format"] = response_format_dict(response_format)
        if tools:
            body["tools"] = [tool_dict(tool) for tool in tools]
            body["tool_choice"] = tool_choice_value(tool_choice)
            if not parallel_tool_calls:
                body["parallel_tool_calls"] = False
        return self._generate(body, messages, cancel)

    def close(self) -> None:
        """Close the HTTP client if this model created it."""
        if self._owns_client:
            self._client.close()

    def _generate(
        self, body: dict[str, Any], messages: Sequence[Message], cancel: threading.Event | None
    ) -> Iterator[Delta]:
        reader = ChunkReader(self._server_error)
        attempt = 0
        while True:
            try:
                yield from self._attempt(body, reader, cancel)
                break
            except _Retryable as retry:
                if attempt >= self.retry.max_retries:
                    raise retry.error from retry.__cause__
                delay = self.retry.delay(attempt, retry.retry_after_s)
                log.warning("retrying %s in %.1f s (%s)", self.url, delay, retry.error)
                if self.retry.wait(attempt, retry.retry_after_s, cancel):
                    break
                attempt += 1
        if cancel is not None and cancel.is_set():
            yield Delta(finish_reason=FINISH_CANCELLED, usage=reader.usage_so_far())
            return
        usage = reader.usage or Usage(
            estimate_prompt_tokens(self, messages), reader.completion_tokens
        )
        if calls := reader.tool_calls():
            yield Delta(tool_calls=calls)
            yield Delta(finish_reason=FINISH_TOOL_CALLS, usage=usage)
            return
        yield Delta(finish_reason=reader.finish_reason or FINISH_STOP, usage=usage)

    def _attempt(
        self, body: dict[str, Any], reader: ChunkReader, cancel: threading.Event | None
    ) -> Iterator[Delta]:
        """One request; raises _Retryable for failures worth retrying before any token."""
        try:
            with self._client.stream(
                "POST", self.url, json=body, headers=self._headers(), timeout=self._timeout
            ) as response:
                if response.status_code >= 400:
                    raise self._http_error(response)
                yield from self._read(response, reader, cancel)
        except httpx.TimeoutException as exc:
            kind = "connect" if isinstance(exc, httpx.ConnectTimeout) else "read"
            error = BackendError(
                f"chat model server {self.url} timed out ({kind} timeout, "
                f"{self._timeout.read if kind == 'read' else self._timeout.connect} s)"
            )
            if kind == "connect" and not reader.completion_tokens:
                raise _Retryable(error) from exc
            raise error from exc
        except httpx.TransportError as exc:
            error = BackendError(f"cannot reach chat model server {self.url}: {exc}")
            if not reader.completion_tokens:
                raise _Retryable(error) from exc
            raise error from exc

    def _read(
        self, response: httpx.Response, reader: ChunkReader, cancel: threading.Event | None
    ) -> Iterator[Delta]:
        if not response.headers.get("content-type", "").startswith("text/event-stream"):
            if text := reader.feed(_json(response.read(), self.url)):
                yield Delta(text=text)
            return
        for line in response.iter_lines():
            if cancel is not None and cancel.is_set():
                return
            if not line.startswith("data:"):
                continue  # blank separators, ": keep-alive" comments, event:/id: fields
            data = line[5:].strip()
            if data == "[DONE]":
                return
            if text := reader.feed(_json(data.encode(), self.url)):
                yield Delta(text=text)
        if reader.finish_reason is None and not (cancel is not None and cancel.is_set()):
            raise BackendError(f"chat model server {self.url} ended the stream mid-answer")

    def _headers(self) -> dict[str, str]:
        return {"Accept": "text/event-stream", **bearer(self._api_key)}

    def _http_error(self, response: httpx.Response) -> Exception:
        status = response.status_code
        raw = response.read()
        said = f"chat model server {self.url} refused the request: {server_message(raw)}"
        if error_code(raw) == "context_length_exceeded":
            return ContextLengthExceeded(said)
        if status in (400, 422):
            return BadInput(said)
        error = BackendError(
            f"chat model server {self.url} returned HTTP {status}: {server_message(raw)}"
        )
        if status in RETRY_STATUS:
            return _Retryable(error, retry_after(response))
        return error

    def _server_error(self, error: object) -> Exception:
        return BackendError(f"chat model server {self.url} reported: {describe(error)}")


class _Retryable(Exception):
    """A failure before the first token that another attempt may not repeat."""

    def __init__(self, error: BackendError, retry_after_s: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after_s = retry_after_s


def _json(raw: bytes, url: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError:
        raise BackendError(
            f"chat model server {url} sent invalid JSON: {raw[:_ERROR_EXCERPT]!r}"
        ) from None
    if not isinstance(value, dict):
        raise BackendError(f"chat model server {url} sent {type(value).__name__}, not an object")
    return value
