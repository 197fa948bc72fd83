"""The catalog database unreachable or restarted: one clear line, then the next query works."""

from __future__ import annotations

import pytest

from kbchat.errors import BackendError
from kbchat.store.catalog import Catalog
from kbchat.store.reach import first_line, masked_url
from kbchat.testing.postgres import running_postgres
from tests.store.support import create_hash_kb


def test_an_unreachable_catalog_database_is_one_line_without_its_password() -> None:
    url = "postgresql+psycopg://kbchat:s3cret@127.0.0.1:9/kbchat"  # the discard port
    with pytest.raises(BackendError) as caught:
        Catalog(url)
    message = str(caught.value)
    assert "\n" not in message and caught.value.__cause__ is None
    assert "postgresql+psycopg://kbchat:***@127.0.0.1:9/kbchat" in message
    assert "refused" in message.lower() and "check that the server is running" in message
    assert "s3cret" not in message


def test_masked_url_hides_the_password_and_never_echoes_a_malformed_url() -> None:
    assert masked_url("postgresql://u:pw@h:5/d") == "postgresql://u:***@h:5/d"
    assert masked_url("sqlite:////tmp/catalog.db") == "sqlite:////tmp/catalog.db"
    assert masked_url("not a url :pw@") == "<malformed database URL>"


def test_first_line_reads_the_drivers_message() -> None:
    class Wrapped(Exception):
        orig = OSError("connection refused\n\tIs the server running?")

    assert first_line(Wrapped("long wrapper text")) == "connection refused"
    assert first_line(ValueError("")) == "ValueError"


@pytest.mark.postgres
def test_a_catalog_query_after_a_server_restart_succeeds() -> None:
    with running_postgres() as server:
        url = server.url.replace("postgresql://", "postgresql+psycopg://", 1)
        catalog = Catalog(url)
        try:
            create_hash_kb(catalog)
            assert catalog.kb_names() == ["kb"]
            server.restart()  # every pooled connection is now dead
            assert catalog.kb_names() == ["kb"]
            assert catalog.get_kb("kb").dim == 8
        finally:
            catalog.close()
