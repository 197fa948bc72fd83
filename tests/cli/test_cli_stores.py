"""Vector stores from the command line: kb migrate, and servers that cannot be reached."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from kbchat.cli.serve import check_storage
from kbchat.config import load_settings
from kbchat.testing.postgres import TestPostgres
from tests.cli.test_cli import run

PG_DOWN = "postgresql://kbchat:s3cret@127.0.0.1:9/kbchat"  # the discard port: nothing listens
MILVUS_DOWN = "http://root:m1lvus@127.0.0.1:9"


@pytest.fixture(autouse=True)
def hash_embedder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KBCHAT_EMBEDDER__BACKEND", "hash")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    root.mkdir()
    for n, text in enumerate(["kettle warranty two years", "green tea at 80 degrees", "lamp"]):
        (root / f"d{n}.txt").write_text(text, encoding="utf-8")
    return root


def test_kb_migrate_prints_what_it_did(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run("kb", "create", "m", capsys=capsys)
    run("kb", "add", "m", str(folder), capsys=capsys)
    _, before, _ = run("kb", "search", "m", "kettle", "--json", capsys=capsys)
    code, out, err = run("kb", "migrate", "m", "--to", "milvus", "--json", capsys=capsys)
    assert code == 0, err
    shown = json.loads(out)
    assert shown["source"] == "faiss" and shown["target"] == "milvus"
    assert shown["vectors"] == 3 and shown["queries_compared"] == 3
    assert shown["source_dropped"] is True and shown["note"] is None
    _, after, _ = run("kb", "search", "m", "kettle", "--json", capsys=capsys)
    assert json.loads(after) == json.loads(before)
    _, info, _ = run("kb", "info", "m", "--json", capsys=capsys)
    assert json.loads(info)["store"] == "milvus"
    code, out, _ = run("kb", "migrate", "m", "--to", "faiss", capsys=capsys)
    assert code == 0 and "from milvus to faiss: 3 vectors copied, 3 sample searches" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope", "--to", "milvus"], "no knowledge base named 'nope'; known: m"),
        (["m", "--to", "x"], "unknown vector store backend 'x'; known: faiss, milvus, pgvector"),
        (["m", "--to", "faiss"], "already keeps its vectors in 'faiss'"),
        (["m", "--to", "pgvector"], "set store.urls.pgvector or store.url"),
    ],
)
def test_kb_migrate_refusals_are_one_line(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run("kb", "create", "m", capsys=capsys)
    code, _, err = run("kb", "migrate", *args, capsys=capsys)
    assert code == 1 and message in err
    assert err.strip().count("\n") == 0 and "Traceback" not in err


def test_kb_migrate_to_an_unreachable_server_leaves_the_kb_working(
    folder: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run("kb", "create", "m", capsys=capsys)
    run("kb", "add", "m", str(folder), capsys=capsys)
    monkeypatch.setenv("KBCHAT_STORE__URLS__PGVECTOR", PG_DOWN)
    code, _, err = run("kb", "migrate", "m", "--to", "pgvector", capsys=capsys)
    assert code == 1 and "Traceback" not in err
    assert "cannot reach PostgreSQL at postgresql://kbchat@127.0.0.1:9/kbchat" in err
    assert "s3cret" not in err
    code, out, _ = run("kb", "search", "m", "kettle", "--json", capsys=capsys)
    assert code == 0 and json.loads(out)[0]["file"] == "d0.txt"


def test_a_kb_on_an_unreachable_store_is_one_line(
    folder: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KBCHAT_STORE__URLS__PGVECTOR", PG_DOWN)
    run("kb", "create", "p", "--store", "pgvector", capsys=capsys)
    for args in (["kb", "add", "p", str(folder)], ["kb", "search", "p", "kettle"]):
        code, _, err = run(*args, capsys=capsys)
        assert code == 1 and "Traceback" not in err, err
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and "postgresql://kbchat@127.0.0.1:9/kbchat" in lines[0]
        assert "s3cret" not in err


def test_doctor_names_each_unreachable_store_on_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KBCHAT_STORE__URLS__PGVECTOR", PG_DOWN)
    monkeypatch.setenv("KBCHAT_STORE__URLS__MILVUS", MILVUS_DOWN)
    run("kb", "create", "p", "--store", "pgvector", capsys=capsys)
    run("kb", "create", "q", "--store", "milvus", capsys=capsys)
    code, out, _ = run("doctor", "--json", capsys=capsys)
    assert code == 1
    checks = {c["name"]: c for c in json.loads(out)}
    pg, milvus = checks["vector store 'pgvector'"], checks["vector store 'milvus'"]
    assert not pg["ok"] and "postgresql://kbchat@127.0.0.1:9/kbchat" in pg["detail"]
    assert not milvus["ok"] and "Milvus at http://root@127.0.0.1:9" in milvus["detail"]
    assert checks["vector store 'faiss'"]["ok"]
    assert "s3cret" not in out and "m1lvus" not in out
    assert "\n" not in pg["detail"] + milvus["detail"]


@pytest.mark.postgres
def test_doctor_reports_a_reachable_pgvector_server(
    postgres: TestPostgres, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KBCHAT_STORE__BACKEND", "pgvector")
    monkeypatch.setenv("KBCHAT_STORE__URLS__PGVECTOR", postgres.url)
    _, out, _ = run("doctor", "--json", capsys=capsys)
    check = {c["name"]: c for c in json.loads(out)}["vector store 'pgvector'"]
    assert check["ok"] and check["detail"].startswith("PostgreSQL ")
    assert "pgvector " in check["detail"]


def test_serve_warns_at_start_about_each_unreachable_store(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("KBCHAT_STORE__BACKEND", "pgvector")
    monkeypatch.setenv("KBCHAT_STORE__URLS__PGVECTOR", PG_DOWN)
    with caplog.at_level(logging.WARNING, logger="kbchat.serve"):
        check_storage(load_settings())
    [line] = [r.getMessage() for r in caplog.records if r.name == "kbchat.serve"]
    assert "vector store 'pgvector': cannot reach PostgreSQL at postgresql://kbchat@" in line
    assert "s3cret" not in line


def test_serve_with_an_unreachable_catalog_stops_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from kbchat.config import Settings

    down = "postgresql+psycopg://kbchat:s3cret@127.0.0.1:9/kbchat"
    monkeypatch.setattr(Settings, "catalog_url", property(lambda _: down))
    code, _, err = run("serve", "--port", "9", "--no-sample", capsys=capsys)
    assert code == 1 and "Traceback" not in err
    [line] = [line for line in err.splitlines() if line.strip()]
    assert "cannot open the catalog database at postgresql+psycopg://kbchat:***@127.0.0.1:9" in line
    assert "s3cret" not in err
