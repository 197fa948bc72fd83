"""What the CLI prints when things go wrong: once, with the right exit code, no library noise."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest

from tests.cli.test_cli import run


@pytest.fixture(autouse=True)
def hash_embedder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KBCHAT_EMBEDDER__BACKEND", "hash")


def test_a_failed_file_is_reported_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.pdf").write_bytes(b"garbage %PDF-1.4 not really")
    (tmp_path / "ok.txt").write_text("hello", encoding="utf-8")
    run("kb", "create", "t", capsys=capsys)
    code, out, err = run("kb", "add", "t", str(tmp_path), capsys=capsys)
    assert code == 3
    assert err.count("bad.pdf") == 1 and "1 failed, 1 indexed" in out


def test_kb_rm_of_an_unknown_file_exits_1_and_removes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "ok.txt").write_text("hello", encoding="utf-8")
    run("kb", "create", "t", capsys=capsys)
    run("kb", "add", "t", str(tmp_path / "ok.txt"), capsys=capsys)
    code, _, err = run("kb", "rm", "t", "ok.txt", "nope.txt", capsys=capsys)
    assert code == 1 and err.count("nope.txt") == 1 and "nothing was removed" in err
    _, out, _ = run("kb", "files", "t", capsys=capsys)
    assert "ok.txt" in out


def test_kb_drop_without_a_terminal_asks_for_yes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run("kb", "create", "t", capsys=capsys)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    code, _, err = run("kb", "drop", "t", capsys=capsys)
    assert code == 1 and "--yes" in err
    code, _, _ = run("kb", "drop", "t", "--yes", capsys=capsys)
    assert code == 0


def test_kb_info_is_readable_and_json_stays_machine_readable(
    capsys: pytest.CaptureFixture[str],
) -> None:
    run("kb", "create", "t", capsys=capsys)
    _, out, _ = run("kb", "info", "t", capsys=capsys)
    assert "created_at: 20" in out and "T" in out.split("created_at: ")[1][:20]
    assert "status: no files" in out
    code, out, _ = run("kb", "info", "t", "--json", capsys=capsys)
    import json

    assert code == 0 and isinstance(json.loads(out)["created_at"], float)


def test_library_debug_lines_stay_off_stderr() -> None:
    from kbchat.logging import configure_logging

    stream = io.StringIO()
    configure_logging("WARNING", stream=stream)
    noisy = logging.getLogger("bm25s")
    noisy.setLevel(logging.DEBUG)  # as bm25s does on import
    noisy.debug("Building index from tokens")
    logging.getLogger("pypdf").warning("EOF marker not found")
    logging.getLogger("kbchat.test").warning("shown")
    assert stream.getvalue().strip().endswith("shown") and "EOF" not in stream.getvalue()
    assert "Building index" not in stream.getvalue()


def test_an_embedder_without_its_settings_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KBCHAT_EMBEDDER__BACKEND", "openai")
    code, _, err = run("kb", "create", "remote", capsys=capsys)
    assert code == 1 and "embedder 'openai' needs base_url and model" in err
    assert "Traceback" not in err


def test_agent_and_web_are_two_modes(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run("ask", "--agent", "--web", "x", capsys=capsys)
    assert code == 1 and "--agent and --web are two modes" in err


def test_milvus_and_grpc_noise_stays_off_stderr() -> None:
    from kbchat.logging import configure_logging

    stream = io.StringIO()
    configure_logging("WARNING", stream=stream)
    logging.getLogger("grpc._server").error(
        "Exception calling application: Method not implemented!"
    )
    assert stream.getvalue() == ""
