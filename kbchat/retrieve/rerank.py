"""Rerankers: cross-encoders that score (query, passage) pairs in [0, 1].

No reranker weights ship offline, so reranking is off by default. Two backends:
- ``OnnxCrossEncoder``: a local folder with ``model.onnx`` and ``tokenizer.json`` (any
  BERT-style cross-encoder exported to ONNX, e.g. bge-reranker), run by onnxruntime;
- ``RemoteReranker``: a ``/v1/rerank`` endpoint (Xinference, Jina, vLLM, TEI's
  Cohere-compatible route) that returns ``results[].relevance_score``; requests are
  retried like chat and embedding requests (``kbchat.remote``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from pydantic import SecretStr

from kbchat.errors import BackendError, ConfigError, MissingDependency
from kbchat.remote import RetryPolicy, bearer, post_json


def _sigmoid(values: np.ndarray) -> np.ndarray:
    result: np.ndarray = 1.0 / (1.0 + np.exp(-values))
    return result


class OnnxCrossEncoder:
    """A cross-encoder exported to ONNX, loaded from ``path`` (model.onnx + tokenizer.json)."""

    def __init__(
        self,
        *,
        path: Path | str,
        max_length: int = 512,
        batch_size: int = 16,
        threads: int | None = None,
        **_: object,
    ) -> None:
        folder = Path(path).expanduser()
        model_file, tokenizer_file = folder / "model.onnx", folder / "tokenizer.json"
        for needed in (model_file, tokenizer_file):
            if not needed.is_file():
                raise ConfigError(
                    f"reranker path {folder}: {needed.name} not found; export the "
                    "cross-encoder to ONNX with its tokenizer.json beside it"
                )
        try:
            import onnxruntime
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise MissingDependency(
                exc.name or "onnxruntime", "rerank", "the ONNX reranker"
            ) from exc
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self._session = onnxruntime.InferenceSession(
            str(model_file), options, providers=["CPUExecutionProvider"]
        )
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._tokenizer = Tokenizer.from_file(str(tokenizer_file))
        self._tokenizer.enable_truncation(max_length)
        self._tokenizer.enable_padding()
        self.batch_size = batch_size
        self.name = f"onnx:{folder.name}"

    def rerank(self, query: str, passages: Sequence[str]) -> list[float]:
        scores: list[float] = []
        for start in range(0, len(passages), self.batch_size):
            batch = [(query, p) for p in passages[start : start + self.batch_size]]
            encodings = self._tokenizer.encode_batch(batch)
            feed = {
                "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
                "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
            }
            logits = self._session.run(None, {k: v for k, v in feed.items() if k in self._inputs})[
                0
            ]
            logits = np.asarray(logits, dtype=np.float32).reshape(len(batch), -1)[:, -1]
            scores.extend(_sigmoid(logits).tolist())
        return scores


class RemoteReranker:
    """A ``POST {base_url}/rerank`` endpoint in the Jina/Cohere shape.

    Args:
        base_url: The API root, e.g. ``http://127.0.0.1:9997/v1``.
        model: The reranker's model name on the server.
        api_key: Sent as a bearer token when given.
        timeout_s: Per-request timeout in seconds.
        client: An httpx client to send requests with (default: one of our own).
        max_retries: Retries after connection errors, 429 and 5xx.
        backoff_s: First retry delay; it doubles on each retry (a Retry-After wins).

    Raises:
        ConfigError: ``base_url`` is missing.
    """

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: SecretStr | str | None = None,
        timeout_s: float = 30.0,
        client: httpx.Client | None = None,
        max_retries: int = 2,
        backoff_s: float = 0.5,
        **_: object,
    ) -> None:
        if not base_url:
            raise ConfigError("the remote reranker needs base_url, e.g. http://127.0.0.1:9997/v1")
        self.url = base_url.rstrip("/") + "/rerank"
        self.model = model
        self.name = f"remote:{model}@{base_url}"
        self._api_key = SecretStr(api_key) if isinstance(api_key, str) else api_key
        self._timeout_s = timeout_s
        self._client = client or httpx.Client(timeout=timeout_s)
        self._retry = RetryPolicy(max_retries, backoff_s)

    def rerank(self, query: str, passages: Sequence[str]) -> list[float]:
        if not passages:
            return []
        body = {
            "model": self.model,
            "query": query,
            "documents": list(passages),
            "top_n": len(passages),
            "return_documents": False,
        }
        payload = post_json(
            self._client,
            self.url,
            body,
            server="reranker",
            policy=self._retry,
            headers=bearer(self._api_key),
            timeout_s=self._timeout_s,
        )
        return _scores_from(payload, len(passages), self.url)


def _scores_from(payload: Any, count: int, url: str) -> list[float]:
    results = payload.get("results") if isinstance(payload, dict) else payload
    if not isinstance(results, list):
        raise BackendError(f"reranker at {url} returned no 'results' list")
    scores = [0.0] * count
    for item in results:
        try:
            index = int(item["index"])
            raw = float(item.get("relevance_score", item.get("score")))
        except (KeyError, TypeError, ValueError) as exc:
            raise BackendError(f"reranker at {url} returned a malformed result {item!r}") from exc
        if 0 <= index < count:
            scores[index] = raw if 0.0 <= raw <= 1.0 else 1.0 / (1.0 + math.exp(-raw))
    return scores
