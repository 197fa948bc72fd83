"""The catalog on PostgreSQL: one setting moves knowledge bases, files, chunks, conversations,
summaries and jobs there; a restarted server costs no failed query; an unreachable one is one
clear line without the password."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kbchat.config import load_settings
from kbchat.errors import BackendError, ConfigError
from kbchat.kb.library import Library
from kbchat.store.catalog import Catalog
from kbchat.store.conversations import ConversationStore, StoredMessage
from kbchat.testing.postgres import TestPostgres, running_postgres

REPO = Path(__file__).resolve().parents[2]


def test_the_catalog_url_setting_moves_the_catalog_and_the_default_store_url() -> None:
    embedded = load_settings()
    assert embedded.catalog_url.startswith("sqlite:///") and not embedded.shared_catalog
    assert embedded.store_url_for("pgvector") is None and not embedded.uploads_in_database
    moved = load_settings(catalog={"url": "postgresql://kb:pw@db.example:5432/kbchat"})
    assert moved.catalog_url == "postgresql+psycopg://kb:pw@db.example:5432/kbchat"
    assert moved.store_url_for("pgvector") == "postgresql://kb:pw@db.example:5432/kbchat"
    assert moved.store_url_for("milvus") is None  # Milvus Lite by path needs none
    assert moved.shared_catalog and moved.uploads_in_database
    explicit = load_settings(
        catalog={"url": "postgresql://kb@db/kbchat", "uploads_in_database": False},
        store={"url": "postgresql://other@vectors/v"},
    )
    assert explicit.store_url_for("pgvector") == "postgresql://other@vectors/v"
    assert not explicit.uploads_in_database


def test_an_unreachable_database_is_one_line_without_the_password() -> None:
    with pytest.raises(BackendError) as caught:
        Catalog("postgresql+psycopg://kb:s3cret@127.0.0.1:1/kbchat?connect_timeout=2")
    message = str(caught.value)
    assert "s3cret" not in message and "127.0.0.1:1/kbchat" in message
    assert "catalog.url" in message and "\n" not in message
    with pytest.raises(ConfigError, match="catalog.url: .* is not a database URL"):
        Catalog("nosuchdb://x@y/z")


def test_cli_and_doctor_report_an_unreachable_catalog_once(tmp_path: Path) -> None:
    env = {
        "KBCHAT_HOME": str(tmp_path),
        "KBCHAT_CATALOG__URL": "postgresql://kb:s3cret@127.0.0.1:1/kbchat?connect_timeout=2",
        "PYTHONPATH": str(REPO),
        "PATH": "/usr/bin:/bin",
    }
    listed = subprocess.run(
        [sys.executable, "-m", "kbchat", "kb", "list"], env=env, capture_output=True, text=True
    )
    assert listed.returncode == 1 and "Traceback" not in listed.stderr
    assert listed.stderr.count("catalog database at postgresql+psycopg://kb:***@127.0.0.1:1") == 1
    doctor = subprocess.run(
        [sys.executable, "-m", "kbchat", "doctor"], env=env, capture_output=True, text=True
    )
    assert "s3cret" not in doctor.stdout + doctor.stderr
    assert "FAIL catalog" in doctor.stdout


@pytest.mark.postgres
def test_a_library_on_postgresql(postgres: TestPostgres, tmp_path: Path) -> None:
    url = postgres.new_database()
    library = Library(load_settings(embedder={"backend": "hash"}, catalog={"url": url}))
    try:
        folder = tmp_path / "docs"
        folder.mkdir()
        (folder / "kettle.txt").write_text("The K3 kettle warranty lasts two years.")
        (folder / "tea.txt").write_text("绿茶用八十度的水冲泡两分钟。")
        library.create("shop", store="pgvector")
        kb = library.get("shop")
        assert [o.status for o in kb.add([folder])] == ["indexed", "indexed"]
        assert kb.search("kettle warranty", top_k=1)[0].file == "kettle.txt"
        assert library.catalog.shared
        # 63-bit chunk ids survive the round trip (BIGINT on PostgreSQL)
        ids = library.catalog.chunk_ids(kb.record.id)
        assert ids.max() > 2**40
        conversations = ConversationStore(library.catalog.engine)
        conversations.append(
            "c1",
            None,
            [StoredMessage("user", "How long is the warranty?", 1.0)],
            kbs=["shop"],
            model="m",
        )
        assert conversations.get("c1", None).title
    finally:
        library.close()


@pytest.mark.postgres
def test_a_restarted_postgresql_costs_no_failed_query(tmp_path: Path) -> None:
    with running_postgres() as server:
        catalog = Catalog(server.new_database().replace("postgresql://", "postgresql+psycopg://"))
        try:
            catalog.create_kb(
                "a",
                embedder="e",
                embedder_spec={},
                dim=4,
                store="faiss",
                chunk_size=100,
                chunk_overlap=0,
                tokenizer=2,
            )
            assert catalog.kb_names() == ["a"]
            server.restart()  # every pooled connection is now dead
            assert catalog.kb_names() == ["a"]
        finally:
            catalog.close()


@pytest.mark.postgres
def test_api_keys_in_a_shared_catalog_work_on_every_server(
    postgres: TestPostgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kbchat.errors import BadInput, NotFound
    from kbchat.server.auth import (
        Authenticator,
        CatalogKeys,
        add_key,
        describe_keys,
        key_store,
        remove_key,
    )
    from kbchat.server.errors import Unauthorized

    url = postgres.new_database()
    settings = load_settings(catalog={"url": url}, server={"auth": "on"})
    store = key_store(settings)
    assert isinstance(store, CatalogKeys) and "s3cret" not in store.where
    key = add_key(store, "alice", {"docs": "write"})
    with pytest.raises(BadInput, match="already exists"):
        add_key(store, "alice", {"*": "read"})
    first, second = Authenticator(settings), Authenticator(settings)  # two servers
    monkeypatch.setattr(Authenticator, "CATALOG_CHECK_S", 0.0)
    assert first.authenticate(f"Bearer {key}").name == "alice"
    assert second.authenticate(f"Bearer {key}").permissions == {"docs": "write"}
    assert describe_keys(store) == [{"name": "alice", "permissions": {"docs": "write"}}]
    remove_key(store, "alice")
    with pytest.raises(Unauthorized):
        second.authenticate(f"Bearer {key}")
    with pytest.raises(NotFound, match="no key named 'alice' in the catalog"):
        remove_key(store, "alice")


def test_doctor_checks_pgvector_at_the_catalog_s_url_when_no_store_url_is_set() -> None:
    from kbchat.doctor import store_checks

    settings = load_settings(
        catalog={"url": "postgresql://kb:s3cret@127.0.0.1:1/kbchat?connect_timeout=2"},
        store={"backend": "pgvector"},
    )
    [check] = store_checks(settings, ["pgvector"])
    # it tries the catalog's server (unreachable here), not "needs a database URL"
    assert "needs a database URL" not in check.detail and "s3cret" not in check.detail
    assert "127.0.0.1" in check.detail
