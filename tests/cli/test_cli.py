"""The command line as a user runs it: names, JSON fields and exit codes are a contract."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kbchat.cli.main import main

REPO = Path(__file__).resolve().parents[2]


def run(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = 0
    try:
        main(list(args))
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(autouse=True)
def hash_embedder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KBCHAT_EMBEDDER__BACKEND", "hash")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    root.mkdir()
    (root / "kettle.txt").write_text("The kettle warranty lasts two years.", encoding="utf-8")
    (root / "tea.md").write_text("# Tea\n\nGreen tea likes 80 degree water.", encoding="utf-8")
    (root / "skip.bin").write_bytes(b"\x00\x01")
    (root / "bad.docx").write_bytes(b"PK\x03\x04 truncated")
    return root


def test_full_cycle_with_json(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run("kb", "create", "manuals", "--json", capsys=capsys)
    assert code == 0 and json.loads(out)["name"] == "manuals"

    code, out, err = run("kb", "add", "manuals", str(folder), "--json", capsys=capsys)
    assert code == 3, err  # bad.docx failed, the rest landed
    rows = {row["name"]: row for row in json.loads(out)}
    assert rows["kettle.txt"]["status"] == "indexed"
    assert rows["skip.bin"]["status"] == "skipped"
    assert rows["bad.docx"]["status"] == "failed" and "bad.docx" in rows["bad.docx"]["error"]

    code, out, _ = run("kb", "files", "manuals", "--json", capsys=capsys)
    files = json.loads(out)
    assert {"name", "path", "status", "error", "chunks"} <= set(files[0])
    assert {f["name"]: f["status"] for f in files}["tea.md"] == "indexed"

    code, out, _ = run(
        "kb", "search", "manuals", "kettle warranty", "--top-k", "1", "--json", capsys=capsys
    )
    hits = json.loads(out)
    assert code == 0 and len(hits) == 1
    assert {"kb", "file", "page", "text", "score"} <= set(hits[0])
    assert hits[0]["file"] == "kettle.txt" and 0 <= hits[0]["score"] <= 1

    code, out, _ = run("kb", "list", "--json", capsys=capsys)
    listed = json.loads(out)
    assert listed[0]["name"] == "manuals" and listed[0]["chunks"] >= 2

    code, out, _ = run("kb", "rm", "manuals", "tea.md", "--json", capsys=capsys)
    assert code == 0 and json.loads(out)[0]["status"] == "removed"

    code, out, _ = run("kb", "info", "manuals", "--json", capsys=capsys)
    assert json.loads(out)["status"]["indexed"] == 1

    code, _, _ = run("kb", "drop", "manuals", "--yes", capsys=capsys)
    assert code == 0
    code, out, _ = run("kb", "list", "--json", capsys=capsys)
    assert json.loads(out) == []


def test_errors_go_to_stderr_with_nonzero_exit(capsys: pytest.CaptureFixture[str]) -> None:
    run("kb", "create", "alpha", capsys=capsys)
    code, out, err = run("kb", "search", "missing", "hello", capsys=capsys)
    assert code == 1 and out == ""
    assert "no knowledge base named 'missing'" in err and "alpha" in err
    code, _, err = run("kb", "search", "alpha", "   ", capsys=capsys)
    assert code == 1 and "query is empty" in err
    code, _, err = run("kb", "create", "alpha", capsys=capsys)
    assert code == 1 and "already exists" in err


def test_sync_and_rebuild(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run("kb", "create", "m", capsys=capsys)
    (folder / "bad.docx").unlink()
    code, _, _ = run("kb", "sync", "m", str(folder), capsys=capsys)
    assert code == 0
    (folder / "tea.md").unlink()
    code, out, _ = run("kb", "sync", "m", str(folder), "--json", capsys=capsys)
    assert {r["name"]: r["status"] for r in json.loads(out)}["tea.md"] == "removed"
    code, out, _ = run("kb", "rebuild", "m", "--json", capsys=capsys)
    assert code == 0 and {r["status"] for r in json.loads(out)} == {"indexed", "skipped"}


def test_an_empty_library_says_how_to_start(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run("kb", "list", capsys=capsys)
    assert code == 0 and out.startswith("no knowledge bases yet") and "kb create" in out
    assert run("kb", "list", "--json", capsys=capsys)[:2] == (0, "[]\n")


def test_bad_setting_names_the_setting(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KBCHAT_INGEST__CHUNK_SIZE", "ten")
    code, _, err = run("kb", "list", capsys=capsys)
    assert code == 1 and "ingest.chunk_size" in err


def test_console_script_runs_as_a_process(kbchat_home: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "KBCHAT_EMBEDDER__BACKEND": "hash"}
    result = subprocess.run(
        [sys.executable, "-m", "kbchat", "kb", "list", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


def test_doctor_reports_every_part(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run("doctor", "--json", capsys=capsys)
    checks = {c["name"]: c for c in json.loads(out)}
    assert checks["data directory"]["ok"] and checks["catalog"]["ok"]
    assert checks["embedder 'hash'"]["ok"]
    assert any(name.startswith("model ") for name in checks)
    assert code == (0 if all(c["ok"] or c["optional"] for c in checks.values()) else 1)


def test_add_follows_links_out_of_the_folder_only_when_asked(
    folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = tmp_path / "token.txt"
    secret.write_text("zebra-passphrase-7741", encoding="utf-8")
    (folder / "leak.txt").symlink_to(secret)
    run("kb", "create", "r", capsys=capsys)
    _, out, _ = run("kb", "add", "r", str(folder), "--json", capsys=capsys)
    assert {row["name"]: row["status"] for row in json.loads(out)}["leak.txt"] == "skipped"
    _, out, _ = run("kb", "add", "r", str(folder), "--follow-symlinks", "--json", capsys=capsys)
    assert {row["name"]: row["status"] for row in json.loads(out)}["leak.txt"] == "indexed"


def test_readding_reports_only_new_chunks(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run("kb", "create", "r", capsys=capsys)
    _, out, _ = run("kb", "add", "r", str(folder / "kettle.txt"), capsys=capsys)
    assert out.strip().endswith("; 1 new chunk")
    _, out, _ = run("kb", "add", "r", str(folder / "kettle.txt"), "--force", capsys=capsys)
    assert out.strip() == "1 indexed; 0 new chunks, 1 re-embedded"
    _, out, _ = run("kb", "add", "r", str(folder / "kettle.txt"), capsys=capsys)
    assert out.strip() == "1 unchanged"
    _, out, _ = run("kb", "rm", "r", "kettle.txt", capsys=capsys)
    assert out.strip() == "1 removed"


def test_a_rebuild_reports_the_chunks_it_re_embedded(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (folder / "bad.docx").unlink()
    (folder / "guide.txt").write_text(
        "\n\n".join(f"Step {n}: descale the K{n} kettle with citric acid. " * 12 for n in range(5)),
        encoding="utf-8",
    )
    run("kb", "create", "r", "--chunk-size", "200", "--chunk-overlap", "0", capsys=capsys)
    code, out, err = run("kb", "add", "r", str(folder), capsys=capsys)
    assert code == 0, err
    code, out, _ = run("kb", "info", "r", "--json", capsys=capsys)
    stored = json.loads(out)["chunks"]
    assert stored > 3
    code, out, err = run("kb", "rebuild", "r", capsys=capsys)
    assert code == 0, err
    assert out.strip() == f"3 indexed, 1 skipped; {stored} chunks re-embedded"


def test_create_records_the_store_backend(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run("kb", "create", "a", "--store", "faiss", "--json", capsys=capsys)
    assert code == 0 and json.loads(out)["store"] == "faiss"
    code, out, err = run("kb", "create", "b", "--store", "milvux", capsys=capsys)
    assert code == 1
    assert "unknown vector store backend 'milvux'; known: faiss" in err
    code, out, _ = run("kb", "info", "a", "--json", capsys=capsys)
    assert json.loads(out)["store"] == "faiss"


def test_jobs_are_listed_and_cancelled(capsys: pytest.CaptureFixture[str]) -> None:
    from kbchat.config import load_settings
    from kbchat.kb.jobs import JobQueue, Task
    from kbchat.kb.library import Library

    assert run("kb", "create", "manuals", capsys=capsys)[0] == 0
    library = Library(load_settings())
    try:  # a job queued by a server with no worker running yet
        job = JobQueue(library.catalog).submit(
            "manuals", "add", [Task("add", file="a.txt", payload={"path": "/srv/a.txt"})]
        )
    finally:
        library.close()
    code, out, _ = run("kb", "jobs", "manuals", "--json", capsys=capsys)
    assert code == 0 and [(j["id"], j["status"]) for j in json.loads(out)] == [(job.id, "queued")]
    code, out, _ = run("kb", "cancel", job.id, "--json", capsys=capsys)
    cancelled = json.loads(out)
    assert code == 0 and cancelled["status"] == "cancelled"
    assert [(f["name"], f["status"]) for f in cancelled["files"]] == [("a.txt", "cancelled")]
    code, out, _ = run("kb", "jobs", capsys=capsys)
    assert code == 0 and job.id in out and "cancelled" in out
    code, _, err = run("kb", "cancel", job.id, capsys=capsys)
    assert code == 1 and "already finished" in err
    code, _, err = run("kb", "cancel", "no-such-job", capsys=capsys)
    assert code == 1 and "no job with id 'no-such-job'" in err


def test_ctrl_c_during_add_keeps_what_is_done_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import signal

    from kbchat.testing.fakes import HashEmbedder

    folder = tmp_path / "docs"  # name order: the small file is committed first
    folder.mkdir()
    (folder / "a_small.txt").write_text("The K3 kettle boils water in two minutes.")
    big = "\n\n".join(f"Paragraph {n} about giraffe model G{n}." for n in range(200))
    (folder / "b_big.txt").write_text(big)
    (folder / "c_last.txt").write_text("Descale the kettle every month.")
    embed = HashEmbedder.embed_batch

    def interrupted(self: HashEmbedder, texts: list[str], *, is_query: bool = False) -> object:
        if any("giraffe" in t for t in texts):
            signal.raise_signal(signal.SIGINT)  # the user presses Ctrl-C mid-file
        return embed(self, texts, is_query=is_query)

    monkeypatch.setattr(HashEmbedder, "embed_batch", interrupted)
    run("kb", "create", "manuals", "--chunk-size", "200", "--chunk-overlap", "0", capsys=capsys)
    code, out, err = run("kb", "add", "manuals", str(folder), "--json", capsys=capsys)
    assert code == 130, err
    outcomes = {row["name"]: row["status"] for row in json.loads(out)}
    assert outcomes == {
        "a_small.txt": "indexed",
        "b_big.txt": "cancelled",
        "c_last.txt": "cancelled",
    }
    assert "press Ctrl-C again to quit now" in err
    assert "stopped: 1 file(s) finished and kept in 'manuals'; 2 left as they were" in err
    code, out, _ = run("kb", "files", "manuals", "--json", capsys=capsys)
    assert [(f["name"], f["status"]) for f in json.loads(out)] == [("a_small.txt", "indexed")]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored
