"""`kbchat ask` and `kbchat chat` with --server: the real app on loopback answers, no model
loads in the CLI, and an unreachable or refusing server is one line naming the URL."""

from __future__ import annotations

import io
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from kbchat.app import Services
from kbchat.config import load_settings
from kbchat.server import create_app
from kbchat.server.auth import FileKeys, add_key, keys_path
from kbchat.testing.fakes import ScriptedChatModel
from tests.cli.test_cli import run
from tests.server.support import NO_ANSWER_BAR, live_server, make_services

ANSWER = "The K3 kettle warranty is two years [1]."


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Services, str]]:
    """A kbchat server on loopback (API keys on) with a KB 'docs'; yields URL, services, key."""
    settings = load_settings(
        home=tmp_path / "server-home",
        embedder={"backend": "hash"},
        chat=NO_ANSWER_BAR,
        server={"auth": "on"},
    )
    key = add_key(FileKeys(keys_path(settings)), "cli", {"*": "read"})
    services = make_services(settings, ScriptedChatModel([ANSWER, "Second answer."]))
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "kettle.txt").write_text("The K3 kettle has a two year warranty.", encoding="utf-8")
    services.library.ensure("docs").add([folder])
    try:
        with live_server(create_app(settings, services=services)) as url:
            yield url, services, key
    finally:
        services.close()


@pytest.fixture(autouse=True)
def no_local_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """With --server the CLI builds no services (no model, no library) of its own."""

    def refuse(*_: object) -> None:
        raise AssertionError("the CLI built its own services")

    monkeypatch.setattr("kbchat.cli.chat.build_services", refuse)


def test_ask_streams_the_servers_answer_with_citations(
    served: tuple[str, Services, str], capsys: pytest.CaptureFixture[str]
) -> None:
    url, _, key = served
    code, out, err = run(
        "ask", "docs", "How long is the warranty?", "--server", url, "--api-key", key, capsys=capsys
    )
    assert code == 0, err
    assert out.strip() == ANSWER
    assert "[1] kettle.txt" in err  # citations printed as in local mode


def test_ask_json_prints_the_answer_shape(
    served: tuple[str, Services, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, _, key = served
    monkeypatch.setenv("KBCHAT_SERVER", url)  # the environment names the server
    monkeypatch.setenv("KBCHAT_API_KEY", key)
    code, out, err = run("ask", "docs", "How long is the warranty?", "--json", capsys=capsys)
    assert code == 0, err
    body = json.loads(out)
    assert body["answer"] == ANSWER
    assert body["citations"][0]["file"] == "kettle.txt"
    assert body["question"] == "How long is the warranty?"


def test_options_reach_the_server(
    served: tuple[str, Services, str], capsys: pytest.CaptureFixture[str]
) -> None:
    url, services, key = served
    code, _, err = run(
        "ask", "--no-kb", "hello", "--max-tokens", "3", "--server", url, "--api-key", key,
        capsys=capsys,
    )  # fmt: skip
    assert code == 0, err
    model = services.models.get(None)
    assert isinstance(model, ScriptedChatModel)
    assert model.params[-1]["max_tokens"] == 3


def test_missing_key_is_one_line_naming_the_url(
    served: tuple[str, Services, str], capsys: pytest.CaptureFixture[str]
) -> None:
    url, _, _ = served
    code, out, err = run("ask", "docs", "warranty?", "--server", url, capsys=capsys)
    assert code == 1 and out == ""
    assert f"{url}/api/chat answered 401" in err and "--api-key" in err
    assert len(err.strip().splitlines()) == 1


def test_unknown_kb_is_the_servers_404(
    served: tuple[str, Services, str], capsys: pytest.CaptureFixture[str]
) -> None:
    url, _, key = served
    code, _, err = run("ask", "nope", "warranty?", "--server", url, "--api-key", key, capsys=capsys)
    assert code == 1
    assert f"{url}/api/chat answered 404" in err and "nope" in err


def test_unreachable_server_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    code, _, err = run("ask", "docs", "warranty?", "--server", url, capsys=capsys)
    assert code == 1
    assert f"cannot reach the kbchat server at {url}" in err
    assert len(err.strip().splitlines()) == 1


def test_not_a_url_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run("ask", "docs", "q?", "--server", "localhost:7860", capsys=capsys)
    assert code == 1 and "must be an http(s) URL" in err


@pytest.mark.parametrize("question", ["", "   "])
def test_an_empty_question_is_refused_before_the_server_is_asked(
    question: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # the same words as a local answer, not the server's field validation
    code, _, err = run("ask", "docs", question, "--server", "http://127.0.0.1:9", capsys=capsys)
    assert code == 1 and "the question is empty" in err


def test_file_needs_a_local_answer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "a.txt"
    path.write_text("x", encoding="utf-8")
    code, _, err = run(
        "ask", "--file", str(path), "q?", "--server", "http://127.0.0.1:1", capsys=capsys
    )
    assert code == 1 and "--file is not available with --server" in err


def test_chat_keeps_the_conversation_on_the_server(
    served: tuple[str, Services, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, services, key = served
    lines = "How long is the warranty?\n/file x.pdf\n/kb off\nAnd after that?\n/exit\n"
    monkeypatch.setattr("sys.stdin", io.StringIO(lines))
    code, out, err = run("chat", "--kb", "docs", "--server", url, "--api-key", key, capsys=capsys)
    assert code == 0, err
    assert ANSWER in out and "Second answer." in out
    assert "/file is not available with --server" in err
    model = services.models.get(None)
    assert isinstance(model, ScriptedChatModel)
    second_prompt = "\n".join(m.content for m in model.received[-1])
    assert "How long is the warranty?" in second_prompt  # the server kept the history
