"""PostgreSQL + pgvector: one table of (id, vector) per knowledge base, HNSW-indexed by cosine.

Every call is its own committed transaction, so several processes can share a table.
``persist`` builds the HNSW index once the table is large enough for it to pay (below that,
an exact scan is fast); building it once over loaded rows is much faster than growing it row
by row, and afterwards new rows join it as they are added.

Connections come from a pool that checks each connection before lending it, so a restarted
server costs no failed query; a query that still meets a dropped connection is retried once
on a fresh one (every operation here is idempotent).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self, TypeVar

import numpy as np
from numpy.typing import NDArray

from kbchat.errors import BackendError, ConfigError, MissingDependency
from kbchat.store.base import Ids, as_batch, unique_last

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import ConnectionPool

log = logging.getLogger(__name__)
T = TypeVar("T")

# Short enough that the index name (table + "_hnsw") stays within PostgreSQL's 63 bytes.
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,47}")
# pgvector's HNSW takes `vector` columns of up to 2,000 dimensions; wider ones are searched exactly.
HNSW_MAX_DIM = 2000


def describe_url(url: str) -> str:
    """``url`` without its password, for messages."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        parts = conninfo_to_dict(url)
    except Exception:  # a malformed URL: say so without echoing it (it may hold a password)
        return "<malformed PostgreSQL URL>"
    host = parts.get("host") or "localhost"
    port = parts.get("port") or "5432"
    user = f"{parts['user']}@" if parts.get("user") else ""
    return f"postgresql://{user}{host}:{port}/{parts.get('dbname') or ''}"


def unreachable(where: str, exc: Exception) -> BackendError:
    """One line: PostgreSQL at ``where`` (password hidden) cannot be reached, why, what to check."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    reason = lines[0] if lines else type(exc).__name__
    return BackendError(
        f"cannot reach PostgreSQL at {where}: {reason}; check that the server is "
        "running and the URL's host, port, user, password and database"
    )


def _no_url() -> ConfigError:
    return ConfigError(
        "the pgvector store needs a database URL, e.g. postgresql://user@host:5432/kbchat:"
        " set store.urls.pgvector or store.url (KBCHAT_STORE__URLS__PGVECTOR)"
    )


class PgvectorStore:
    """Vectors in a PostgreSQL table with an HNSW index (``vector_cosine_ops``).

    Scores are ``1 - cosine distance`` clipped to [0, 1], as in ``FaissStore``.

    Args:
        url: a libpq URL, e.g. ``postgresql://kbchat@db.example:5432/kbchat``.
        table: the table of this knowledge base; letters, digits and ``_``.
        dim: vector dimension.
        ef_search: HNSW candidate list size per query (pgvector's ``hnsw.ef_search``; raised to
            ``k`` when smaller); see bench/results/stores.json for its recall.
        exact_allowed_max: allow-lists up to this many ids are searched exactly among those ids;
            longer ones go through the index with pgvector's iterative scan.
        index_min_rows: ``persist`` builds the HNSW index once the table has this many rows;
            smaller tables are searched exactly: 21 ms a query at 20k x 384, against 253 ms at
            100k, where HNSW takes 69 ms at recall@10 0.91 (ef_search 100, 2-core machine at
            load 15-19; bench/results/stores.json, docs/stores.md).
        index_memory: PostgreSQL ``maintenance_work_mem`` for building the index; a graph that
            does not fit is built many times more slowly (1GB held about 450k x 384: a 1M build
            went from ~60k rows/min to ~12k rows/min past that point).
        pool_size: the most connections this store holds open at once.
        connect_timeout: seconds to wait for the server when connecting.

    Raises:
        BackendError: the server cannot be reached, lacks pgvector, or the table has another
            dimension.
    """

    def __init__(
        self,
        url: str,
        table: str,
        dim: int,
        *,
        ef_search: int = 100,
        exact_allowed_max: int = 10_000,
        index_min_rows: int = 20_000,
        index_memory: str = "1GB",
        pool_size: int = 4,
        connect_timeout: float = 5.0,
    ) -> None:
        if dim <= 0:
            raise ValueError(f"dim must be > 0, got {dim}")
        if not _NAME.fullmatch(table):
            raise ValueError(f"table must be letters, digits and _ (at most 48), got {table!r}")
        if ef_search <= 0:
            raise ValueError(f"ef_search must be > 0, got {ef_search}")
        try:
            import pgvector.psycopg  # noqa: F401
            import psycopg
            import psycopg_pool  # noqa: F401
        except ImportError as exc:
            raise MissingDependency(exc.name or "psycopg", "scale", "the pgvector store") from None
        self._psycopg = psycopg
        self.dim = dim
        self.table = table
        self.url = url
        self.ef_search = ef_search
        self.exact_allowed_max = exact_allowed_max
        self.index_min_rows = index_min_rows
        self.index_memory = index_memory
        self._where = describe_url(url)
        self._connect_timeout = int(max(1, connect_timeout))
        self._pool_size = max(1, pool_size)
        self._pool_lock = threading.Lock()
        self._create()
        self._pool = self._new_pool()

    @classmethod
    def server_info(cls, url: str | None, *, connect_timeout: float = 5.0) -> str:
        """What answers at ``url``, e.g. ``PostgreSQL 18.1, pgvector 0.8.1`` (``kbchat doctor``).

        Raises:
            ConfigError: no URL.
            BackendError: the server cannot be reached, or has no pgvector extension.
            MissingDependency: psycopg is not installed.
        """
        if not url:
            raise _no_url()
        try:
            import psycopg
        except ImportError as exc:
            raise MissingDependency(exc.name or "psycopg", "scale", "the pgvector store") from None
        where = describe_url(url)
        timeout = int(max(1, connect_timeout))
        try:
            with psycopg.connect(url, autocommit=True, connect_timeout=timeout) as conn:
                version = conn.execute("SHOW server_version").fetchone()
                extension = conn.execute(
                    "SELECT coalesce(installed_version, default_version) "
                    "FROM pg_available_extensions WHERE name = 'vector'"
                ).fetchone()
        except psycopg.Error as exc:
            raise unreachable(where, exc) from None
        if extension is None:
            raise BackendError(
                f"PostgreSQL at {where} has no pgvector extension; install pgvector on that server"
            )
        server = version[0].split()[0] if version else "?"
        return f"PostgreSQL {server}, pgvector {extension[0]} at {where}"

    @classmethod
    def open(cls, *, directory: Path, collection: str, dim: int, url: str | None) -> Self:
        """The store of one knowledge base; ``directory`` is unused (the data is on the server)."""
        if not url:
            raise _no_url()
        return cls(url, collection, dim)

    # -- connections ---------------------------------------------------------------------

    def _connect(self, *, vectors: bool = True) -> psycopg.Connection[Any]:
        """A new connection outside the pool; ``vectors`` loads and dumps them as numpy arrays."""
        from pgvector.psycopg import register_vector

        try:
            conn = self._psycopg.connect(
                self.url, autocommit=True, connect_timeout=self._connect_timeout
            )
        except self._psycopg.OperationalError as exc:
            raise self._unreachable(exc) from None
        except self._psycopg.ProgrammingError as exc:
            raise ConfigError(f"bad PostgreSQL URL {self._where}: {exc}") from None
        if vectors:
            register_vector(conn)
        return conn

    def _new_pool(self) -> ConnectionPool[Any]:
        from pgvector.psycopg import register_vector
        from psycopg_pool import ConnectionPool

        def configure(conn: psycopg.Connection[Any]) -> None:
            register_vector(conn)

        return ConnectionPool(
            self.url,
            min_size=1,
            max_size=self._pool_size,
            kwargs={"autocommit": True, "connect_timeout": self._connect_timeout},
            configure=configure,
            check=ConnectionPool.check_connection,  # a ping before lending: restarts cost nothing
            timeout=self._connect_timeout,
            name=f"kbchat-{self.table}",
            open=True,
        )

    def _unreachable(self, exc: Exception) -> BackendError:
        return unreachable(self._where, exc)

    def _create(self) -> None:
        """Create the extension and table if missing; check the dimension."""
        psycopg = self._psycopg
        from psycopg import sql

        conn = self._connect(vectors=False)  # the vector type may not exist yet
        table = sql.Identifier(self.table)
        with conn, conn.transaction():
            # Two processes opening the same knowledge base must not both run the DDL.
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('kbchat.pgvector'))")
            try:
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            except psycopg.Error as exc:
                raise BackendError(
                    f"PostgreSQL at {self._where} has no pgvector extension and this user cannot "
                    f"create it ({exc.diag.message_primary}); "
                    "run CREATE EXTENSION vector there as an admin"
                ) from None
            conn.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (id bigint PRIMARY KEY, embedding vector({}))"
                ).format(table, sql.Literal(self.dim))
            )
            row = conn.execute(
                "SELECT atttypmod FROM pg_attribute "
                "WHERE attrelid = %s::regclass AND attname = 'embedding'",
                (self.table,),
            ).fetchone()
            if row is not None and row[0] != self.dim:
                raise BackendError(
                    f"pgvector table {self.table} at {self._where} has dimension {row[0]}, "
                    f"expected {self.dim}"
                )

    def _run(self, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        """``work`` on a pooled connection, retried once if the connection was lost.

        A pool that cannot lend a connection in time may be waiting out its reconnection
        backoff after an outage: the call then runs on a new connection of its own, and if
        that works the pool is replaced by a fresh one.
        """
        from psycopg_pool import PoolTimeout

        for attempt in (1, 2):
            pool = self._pool
            try:
                with pool.connection() as conn:
                    return work(conn)
            except PoolTimeout:
                return self._run_alone(work, pool)
            except self._psycopg.OperationalError as exc:
                if attempt == 2 or not self._lost(exc):
                    raise self._unreachable(exc) from None
                log.info("pgvector: connection to %s lost (%s); retrying once", self._where, exc)
        raise AssertionError("unreachable")

    def _run_alone(self, work: Callable[[psycopg.Connection[Any]], T], stale: Any) -> T:
        with self._connect() as conn:
            try:
                result = work(conn)
            except self._psycopg.OperationalError as exc:
                raise self._unreachable(exc) from None
        with self._pool_lock:
            renew = self._pool is stale
            if renew:
                self._pool = self._new_pool()
        if renew:
            log.info("pgvector: %s is back; replaced the connection pool", self._where)
            stale.close(timeout=1.0)
        return result

    def _lost(self, exc: Exception) -> bool:
        """True when ``exc`` means the connection broke, not that the query was wrong."""
        return not isinstance(exc, self._psycopg.errors.QueryCanceled)

    # -- VectorStore -----------------------------------------------------------------------

    def add(self, ids: Ids, vectors: NDArray[np.float32]) -> None:
        if len(ids) == 0:
            return
        ids, matrix = as_batch(ids, vectors, self.dim)
        ids, matrix = unique_last(ids, matrix)
        from psycopg import sql

        stage = sql.Identifier(f"{self.table}_stage")
        upsert = sql.SQL(
            "INSERT INTO {table} (id, embedding) SELECT id, embedding FROM {stage} "
            "ON CONFLICT (id) DO UPDATE SET embedding = EXCLUDED.embedding"
        ).format(table=sql.Identifier(self.table), stage=stage)

        def write(conn: psycopg.Connection[Any]) -> None:
            with conn.transaction(), conn.cursor() as cur:
                cur.execute(
                    sql.SQL(
                        "CREATE TEMP TABLE {} (id bigint, embedding vector({})) ON COMMIT DROP"
                    ).format(stage, sql.Literal(self.dim))
                )
                copy_sql = sql.SQL("COPY {} (id, embedding) FROM STDIN WITH (FORMAT BINARY)")
                with cur.copy(copy_sql.format(stage)) as copy:
                    copy.set_types(["int8", "vector"])
                    for row_id, row in zip(ids.tolist(), matrix, strict=True):
                        copy.write_row((row_id, row))
                cur.execute(upsert)

        self._run(write)

    def delete(self, ids: Ids) -> None:
        if len(ids) == 0:
            return
        from psycopg import sql

        query = sql.SQL("DELETE FROM {} WHERE id = ANY(%s)").format(sql.Identifier(self.table))
        id_list = np.asarray(ids, dtype=np.int64).tolist()
        self._run(lambda conn: conn.execute(query, (id_list,)))

    def search(
        self, vector: NDArray[np.float32], k: int, allowed: Ids | None = None
    ) -> list[tuple[int, float]]:
        if k <= 0:
            raise ValueError(f"k must be > 0, got {k}")
        if allowed is not None and len(allowed) == 0:
            return []
        query = np.ascontiguousarray(vector, dtype=np.float32).reshape(self.dim)
        from psycopg import sql

        table = sql.Identifier(self.table)
        params: tuple[Any, ...]
        if allowed is not None and len(allowed) <= self.exact_allowed_max:
            # Exact among the allowed ids: found through the primary key, then sorted.
            statement = sql.SQL(
                "WITH c AS MATERIALIZED (SELECT id, embedding FROM {} WHERE id = ANY(%s)) "
                "SELECT id, embedding <=> %b FROM c ORDER BY 2 LIMIT %s"
            ).format(table)
            params = (np.asarray(allowed, dtype=np.int64).tolist(), query, k)
        elif allowed is not None:
            statement = sql.SQL(
                "SELECT id, embedding <=> %b AS d FROM {} WHERE id = ANY(%s) ORDER BY d LIMIT %s"
            ).format(table)
            params = (query, np.asarray(allowed, dtype=np.int64).tolist(), k)
        else:
            nearest = "SELECT id, embedding <=> %b AS d FROM {} ORDER BY d LIMIT %s"
            statement = sql.SQL(nearest).format(table)
            params = (query, k)

        def fetch(conn: psycopg.Connection[Any]) -> list[tuple[int, float]]:
            with conn.transaction():
                ef = str(max(self.ef_search, k))
                conn.execute("SELECT set_config('hnsw.ef_search', %s, true)", (ef,))
                if allowed is not None:
                    conn.execute("SELECT set_config('hnsw.iterative_scan', 'strict_order', true)")
                rows = conn.execute(statement, params).fetchall()
            return [(int(i), float(min(max(1.0 - d, 0.0), 1.0))) for i, d in rows]

        return self._run(fetch)

    def get(self, ids: Ids) -> tuple[Ids, NDArray[np.float32]]:
        """The stored vectors of those ``ids`` that exist, in the order given: (n,), (n, dim)."""
        wanted = np.asarray(ids, dtype=np.int64)
        if len(wanted) == 0:
            return wanted.copy(), np.zeros((0, self.dim), dtype=np.float32)
        from psycopg import sql

        query = sql.SQL("SELECT id, embedding FROM {} WHERE id = ANY(%s)").format(
            sql.Identifier(self.table)
        )
        rows = self._run(
            lambda conn: conn.cursor(binary=True).execute(query, (wanted.tolist(),)).fetchall()
        )
        found = {int(i): v.to_numpy() for i, v in rows}
        order = [i for i in wanted.tolist() if i in found]
        matrix = np.stack([found[i] for i in order]) if order else np.zeros((0, self.dim))
        return np.array(order, dtype=np.int64), matrix.astype(np.float32, copy=False)

    def ids(self) -> Ids:
        from psycopg import sql

        query = sql.SQL("SELECT id FROM {}").format(sql.Identifier(self.table))
        rows = self._run(lambda conn: conn.execute(query).fetchall())
        return np.array([r[0] for r in rows], dtype=np.int64)

    def count(self) -> int:
        from psycopg import sql

        query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(self.table))
        row = self._run(lambda conn: conn.execute(query).fetchone())
        return int(row[0]) if row else 0

    def persist(self) -> None:
        """Build the HNSW index if the table has reached ``index_min_rows`` and has none yet.

        The data itself is already durable: every call has committed its own transaction.
        Building takes a lock that lets searches through but holds writes until it is done.
        """
        if self.dim > HNSW_MAX_DIM or self.has_index() or self.count() < self.index_min_rows:
            return
        from psycopg import sql

        index = sql.SQL(
            "CREATE INDEX IF NOT EXISTS {} ON {} USING hnsw (embedding vector_cosine_ops)"
        ).format(sql.Identifier(f"{self.table}_hnsw"), sql.Identifier(self.table))

        def build(conn: psycopg.Connection[Any]) -> None:
            with conn.transaction():
                conn.execute(
                    "SELECT set_config('maintenance_work_mem', %s, true)", (self.index_memory,)
                )
                conn.execute(index)

        self._run(build)

    def has_index(self) -> bool:
        """True once the table has its HNSW index."""
        name = f'"{self.table}_hnsw"'  # quoted: the table name is letters, digits and _ only
        row = self._run(lambda conn: conn.execute("SELECT to_regclass(%s)", (name,)).fetchone())
        return row is not None and row[0] is not None

    def drop(self) -> None:
        """Remove the table (and its index) from the database and close the connections;
        dropping again is a no-op (the store contract)."""
        from psycopg import sql

        if getattr(self, "_dropped", False):
            return
        query = sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(self.table))
        self._run(lambda conn: conn.execute(query))
        self._dropped = True
        self.close()

    def close(self) -> None:
        """Close the pooled connections; the store is unusable afterwards."""
        self._pool.close()
