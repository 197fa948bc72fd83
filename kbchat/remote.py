"""Talking to OpenAI-compatible servers (chat, embeddings, rerank): one retry policy and one
reading of their error bodies, over a caller's ``httpx.Client``.

A request is retried after connection failures and HTTP 429/5xx, at most ``max_retries``
times, waiting ``backoff_s * 2**attempt`` seconds or what the server's ``Retry-After`` asks
(both capped at ``max_delay_s``). A read timeout is not retried: the server may still be
working on the request. Keys travel only in the ``Authorization`` header, never in a message.

Why not the ``openai`` package: a rerank endpoint is not part of the OpenAI API, the chat
stream is read by ``kbchat.llm.wire`` (shared with embedded llama.cpp, whose chunks carry
fields the SDK's types drop), and tests pass an ``httpx.Client`` with a mock transport.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import SecretStr

from kbchat.errors import BackendError

log = logging.getLogger(__name__)

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
"""Statuses worth another attempt: rate-limited, or the server failed."""
_EXCERPT = 500


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to wait before sending a request again.

    Attributes:
        max_retries: Attempts after the first one.
        backoff_s: First delay; it doubles on each retry.
        max_delay_s: Longest wait, whatever the backoff or ``Retry-After`` says.
    """

    max_retries: int = 2
    backoff_s: float = 0.5
    max_delay_s: float = 30.0

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        if self.backoff_s < 0 or self.max_delay_s < 0:
            raise ValueError(
                f"backoff_s and max_delay_s must be >= 0, got {self.backoff_s}, {self.max_delay_s}"
            )

    def delay(self, attempt: int, retry_after_s: float | None = None) -> float:
        """Seconds to wait before retry number ``attempt + 1`` (a server's Retry-After wins)."""
        wanted = retry_after_s if retry_after_s is not None else self.backoff_s * 2**attempt
        return min(max(wanted, 0.0), self.max_delay_s)

    def wait(
        self, attempt: int, retry_after_s: float | None, cancel: threading.Event | None = None
    ) -> bool:
        """Sleep before the next attempt; True if ``cancel`` was set meanwhile."""
        seconds = self.delay(attempt, retry_after_s)
        if cancel is None:
            time.sleep(seconds)
            return False
        return cancel.wait(seconds)


def bearer(api_key: SecretStr | None) -> dict[str, str]:
    """The Authorization header for ``api_key`` (none without a key)."""
    if api_key is None:
        return {}
    return {"Authorization": f"Bearer {api_key.get_secret_value()}"}


def retry_after(response: httpx.Response) -> float | None:
    """The response's ``Retry-After`` in seconds, if it gives a number."""
    try:
        return max(0.0, float(response.headers.get("retry-after", "")))
    except ValueError:
        return None


def post_json(
    client: httpx.Client,
    url: str,
    body: dict[str, Any],
    *,
    server: str,
    policy: RetryPolicy,
    headers: dict[str, str] | None = None,
    timeout_s: float | None = None,
) -> Any:
    """POST ``body`` as JSON and return the decoded JSON answer, retrying per ``policy``.

    Args:
        server: What the server is, for messages ("embedding server", "reranker").

    Raises:
        BackendError: naming ``server`` and ``url``: it could not be reached after every
            attempt, did not answer within ``timeout_s``, answered an error status (with
            the server's own message) or something that is not JSON.
    """
    attempt = 0
    while True:
        wait_for: float | None = None
        try:
            response = client.post(url, json=body, headers=headers or {}, timeout=timeout_s)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            if attempt >= policy.max_retries:
                raise BackendError(
                    f"cannot connect to {server} at {url} after {attempt + 1} attempts: {exc}"
                ) from None
        except httpx.TimeoutException:
            raise BackendError(f"{server} at {url} did not answer within {timeout_s} s") from None
        except httpx.HTTPError as exc:
            raise BackendError(f"request to {server} at {url} failed: {exc}") from None
        else:
            if response.is_success:
                return _decoded(response, server, url)
            if response.status_code not in RETRY_STATUS or attempt >= policy.max_retries:
                raise BackendError(
                    f"{server} at {url} answered HTTP {response.status_code}: "
                    f"{server_message(response.read())}"
                )
            wait_for = retry_after(response)
        log.warning("retrying %s at %s (attempt %d)", server, url, attempt + 2)
        policy.wait(attempt, wait_for)
        attempt += 1


def _decoded(response: httpx.Response, server: str, url: str) -> Any:
    try:
        return response.json()
    except ValueError:
        raise BackendError(
            f"{server} at {url} answered with non-JSON: {response.text[:200]!r}"
        ) from None


def server_message(raw: bytes) -> str:
    """The server's own words from an error body, whatever shape it has."""
    try:
        body = json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace").strip()[:_EXCERPT] or "(empty body)"
    if isinstance(body, dict):
        for key in ("error", "detail", "message"):
            if body.get(key):
                return describe(body[key])
    return json.dumps(body, ensure_ascii=False)[:_EXCERPT]


def error_code(raw: bytes) -> str | None:
    """OpenAI's ``error.code`` in an error body, if it has one."""
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, str) else None


def describe(error: object) -> str:
    """An error value (``{"message": ...}``, a string, anything) as a short message."""
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])[:_EXCERPT]
    if isinstance(error, str):
        return error[:_EXCERPT]
    return json.dumps(error, ensure_ascii=False)[:_EXCERPT]
