"""Milvus through pymilvus: one collection of (id, vector) per knowledge base, HNSW by cosine.

The same code talks to Milvus Lite (embedded; the URI is a local ``.db`` path, which
Milvus Lite uses as its data directory) and to a Milvus server or cluster (``http://host:19530``).

Milvus Lite is for tests and small knowledge bases: it checks every stored row in Python on
each query, 1.2-2.7 s per query at 100k x 384 on the shared 2-core machine
(bench/results/stores.json); a Milvus server does not.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, Self, TypeVar
from urllib.parse import urlsplit, urlunsplit

import numpy as np
from numpy.typing import NDArray

from kbchat.errors import BackendError, MissingDependency
from kbchat.store.base import Ids, as_batch, unique_last

log = logging.getLogger(__name__)
T = TypeVar("T")

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")
# Milvus caps a search's limit (topk) at 16,384.
MAX_TOP_K = 16_384
# Rows per upsert / ids per delete or get: keeps each gRPC message far below Milvus's 64 MB.
BATCH = 4_000


@contextmanager
def _quiet(logger: str) -> Iterator[None]:
    """Silence ``logger`` below CRITICAL for the block (noise this module reports better)."""
    target = logging.getLogger(logger)
    level = target.level
    target.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        target.setLevel(level)


def is_local(uri: str) -> bool:
    """True for a Milvus Lite data path, False for a server URI."""
    return "://" not in uri and uri.endswith(".db")


def describe_uri(uri: str) -> str:
    """``uri`` without its password, for messages."""
    if is_local(uri):
        return uri
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = f"{parts.username}@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


class MilvusStore:
    """Vectors in a Milvus collection with an HNSW index (``COSINE``).

    Milvus reports cosine similarity for ``COSINE``; scores are it clipped to [0, 1], as in
    ``FaissStore``. ``persist`` flushes the collection to durable segments.

    Args:
        uri: a local ``.db`` path (Milvus Lite) or a server URI such as ``http://host:19530``;
            ``http://user:password@host:19530`` authenticates as that user.
        collection: the collection of this knowledge base; letters, digits and ``_``.
        dim: vector dimension.
        ef_search: HNSW candidate list size per query (raised to ``k`` when smaller).
        timeout: seconds to wait for the server on each call.
        create: create (or check) and load the collection; False only connects.

    Raises:
        BackendError: Milvus cannot be reached or the collection has another dimension.
    """

    _local_users: ClassVar[dict[str, int]] = {}
    _local_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self,
        uri: str,
        collection: str,
        dim: int,
        *,
        ef_search: int = 100,
        timeout: float = 10.0,
        create: bool = True,
    ) -> None:
        if dim <= 0:
            raise ValueError(f"dim must be > 0, got {dim}")
        if not _NAME.fullmatch(collection):
            raise ValueError(
                f"collection must be letters, digits and _ (at most 255), got {collection!r}"
            )
        if ef_search <= 0:
            raise ValueError(f"ef_search must be > 0, got {ef_search}")
        try:
            from pymilvus import MilvusClient, MilvusException
        except ImportError:
            raise MissingDependency("pymilvus", "scale", "the Milvus store") from None
        self._error: type[Exception] = MilvusException
        self.dim = dim
        self.collection = collection
        self.ef_search = ef_search
        self.timeout = timeout
        self.uri = uri
        self._where = describe_uri(uri)
        self._local = is_local(uri)
        connect: dict[str, Any] = {"uri": uri, "timeout": timeout}
        if self._local:
            try:
                import milvus_lite  # noqa: F401
            except ImportError:
                raise MissingDependency(
                    "milvus-lite", "scale", "a local Milvus Lite store"
                ) from None
            try:
                Path(uri).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise BackendError(
                    f"cannot create the folder of Milvus Lite database {uri}: {exc.strerror}"
                ) from None
            connect["uri"] = str(Path(uri).resolve())
        else:
            parts = urlsplit(uri)
            if parts.username:
                connect["token"] = f"{parts.username}:{parts.password or ''}"
                connect["uri"] = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
        # Milvus Lite logs a traceback when it cannot open its data; the error raised here says it.
        with _quiet("milvus_lite.server_manager"):
            self._client = self._call(lambda: MilvusClient(**connect))
        if self._local:
            with self._local_lock:
                self._local_users[connect["uri"]] = self._local_users.get(connect["uri"], 0) + 1
        self._local_path = connect["uri"] if self._local else None
        if create:
            self._call(self._create)

    @classmethod
    def server_info(cls, uri: str | None, *, timeout: float = 10.0) -> str:
        """What answers at ``uri``, e.g. ``Milvus v2.5.4 at http://host:19530`` (``kbchat doctor``);
        without one, that Milvus Lite (installed) keeps each knowledge base in its folder.

        Raises:
            BackendError: Milvus cannot be reached (or a Milvus Lite path cannot be opened).
            MissingDependency: pymilvus (or milvus-lite without a server) is not installed.
        """
        if not uri:
            try:
                import milvus_lite
            except ImportError:
                raise MissingDependency(
                    "milvus-lite", "scale", "a local Milvus Lite store"
                ) from None
            version = getattr(milvus_lite, "__version__", "installed")
            return f"Milvus Lite {version} in each knowledge base's folder"
        probe = cls(uri, "kbchat_probe", 2, timeout=timeout, create=False)
        try:
            version = probe._call(probe._client.get_server_version)
        finally:
            probe.close()
        kind = "Milvus Lite" if probe._local else "Milvus"
        return f"{kind} {version} at {probe._where}"

    @classmethod
    def open(cls, *, directory: Path, collection: str, dim: int, url: str | None) -> Self:
        """The store of one knowledge base; without ``url``, Milvus Lite in ``directory``."""
        return cls(url or str(directory / "milvus.db"), collection, dim)

    def _call(self, work: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``work(*args, **kwargs)``, Milvus errors turned into one-line ``BackendError``s."""
        try:
            return work(*args, **kwargs)
        except self._error as exc:
            message = getattr(exc, "message", "") or str(exc) or type(exc).__name__
            first = message.strip().splitlines()[0] if message.strip() else type(exc).__name__
            if self._local:
                hint = "check that the path is writable and no other process has it open"
            else:
                hint = "check that the server is running and the URI's host, port and credentials"
            raise BackendError(f"Milvus at {self._where}: {first}; {hint}") from None

    def _create(self) -> None:
        """Create the collection and its index if missing; check the dimension; load it."""
        from pymilvus import DataType, MilvusClient

        client, name = self._client, self.collection
        if not client.has_collection(name):
            schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("id", DataType.INT64, is_primary=True)
            schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dim)
            index = client.prepare_index_params()
            index.add_index(
                field_name="vector",
                index_type="HNSW",
                metric_type="COSINE",
                params={"M": 16, "efConstruction": 64},  # as pgvector's defaults
            )
            try:
                client.create_collection(
                    name, schema=schema, index_params=index, consistency_level="Strong"
                )
            except self._error:
                if not client.has_collection(name):  # not merely created by another process
                    raise
        fields = client.describe_collection(name)["fields"]
        dims = [int(f["params"]["dim"]) for f in fields if f["name"] == "vector"]
        if dims != [self.dim]:
            found = dims[0] if dims else "no vector field"
            raise BackendError(
                f"Milvus collection {name} at {self._where} has dimension {found}, "
                f"expected {self.dim}"
            )
        client.load_collection(name)

    def add(self, ids: Ids, vectors: NDArray[np.float32]) -> None:
        if len(ids) == 0:
            return
        ids, matrix = as_batch(ids, vectors, self.dim)
        ids, matrix = unique_last(ids, matrix)
        for start in range(0, len(ids), BATCH):
            end = start + BATCH
            rows = [
                {"id": i, "vector": v}
                for i, v in zip(ids[start:end].tolist(), matrix[start:end], strict=True)
            ]
            self._call(self._client.upsert, self.collection, rows)

    def delete(self, ids: Ids) -> None:
        id_list = np.asarray(ids, dtype=np.int64).tolist()
        for start in range(0, len(id_list), BATCH):
            batch = id_list[start : start + BATCH]
            self._call(self._client.delete, self.collection, ids=batch)

    def search(
        self, vector: NDArray[np.float32], k: int, allowed: Ids | None = None
    ) -> list[tuple[int, float]]:
        if k <= 0:
            raise ValueError(f"k must be > 0, got {k}")
        if allowed is not None and len(allowed) == 0:
            return []
        query = np.ascontiguousarray(vector, dtype=np.float32).reshape(self.dim)
        limit = min(k, MAX_TOP_K)
        # Ids are int64, so the filter is built from numbers only.
        where = "" if allowed is None else f"id in {np.asarray(allowed, np.int64).tolist()}"
        results = self._call(
            lambda: self._client.search(
                self.collection,
                data=[query],
                limit=limit,
                filter=where,
                output_fields=["id"],
                search_params={
                    "metric_type": "COSINE",
                    "params": {"ef": max(self.ef_search, limit)},
                },
            )
        )
        return [(int(hit["id"]), float(min(max(hit["distance"], 0.0), 1.0))) for hit in results[0]]

    def get(self, ids: Ids) -> tuple[Ids, NDArray[np.float32]]:
        """The stored vectors of those ``ids`` that exist, in the order given: (n,), (n, dim)."""
        wanted = np.asarray(ids, dtype=np.int64).tolist()
        found: dict[int, NDArray[np.float32]] = {}
        for start in range(0, len(wanted), BATCH):
            batch = wanted[start : start + BATCH]
            rows = self._call(
                self._client.get, self.collection, ids=batch, output_fields=["vector"]
            )
            for row in rows:
                found[int(row["id"])] = np.asarray(row["vector"], dtype=np.float32)
        order = [i for i in wanted if i in found]
        matrix = np.stack([found[i] for i in order]) if order else np.zeros((0, self.dim))
        return np.array(order, dtype=np.int64), matrix.astype(np.float32, copy=False)

    def ids(self) -> Ids:
        def collect() -> list[int]:
            # Milvus Lite has no server timestamp for the iterator: pymilvus warns, harmlessly.
            with _quiet("pymilvus.client.iterator.query_iterator"):
                iterator = self._client.query_iterator(
                    self.collection, batch_size=BATCH, filter="", output_fields=["id"]
                )
            found: list[int] = []
            try:
                while batch := iterator.next():
                    found.extend(int(row["id"]) for row in batch)
            finally:
                iterator.close()
            return found

        return np.array(self._call(collect), dtype=np.int64)

    def count(self) -> int:
        rows = self._call(
            lambda: self._client.query(self.collection, filter="", output_fields=["count(*)"])
        )
        return int(rows[0]["count(*)"])

    def persist(self) -> None:
        """Flush the collection's inserts and deletes to durable segments."""
        self._call(lambda: self._client.flush(self.collection))

    def drop(self) -> None:
        """Remove the collection (vectors and index) and close the connection; dropping
        again is a no-op (the store contract)."""
        if getattr(self, "_dropped", False):
            return
        self._call(lambda: self._client.drop_collection(self.collection))
        self._dropped = True
        self.close()

    def close(self) -> None:
        """Close the connection; the last store on a Milvus Lite path also stops its server."""
        self._client.close()
        path, self._local_path = self._local_path, None
        if path is None:
            return
        with self._local_lock:
            self._local_users[path] -= 1
            last = self._local_users[path] == 0
            if last:
                del self._local_users[path]
        if last:
            from milvus_lite.server_manager import server_manager_instance

            server_manager_instance.release_server(path)
