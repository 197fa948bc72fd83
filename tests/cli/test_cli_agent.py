"""`kbchat ask --agent` and `/agent` in `kbchat chat`: tool steps shown, answer printed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kbchat.app import ModelPool
from kbchat.llm.base import ChatModel
from kbchat.testing.fakes import ScriptedChatModel
from kbchat.types import ToolCall
from tests.cli.test_cli import run


@pytest.fixture
def model(monkeypatch: pytest.MonkeyPatch) -> ScriptedChatModel:
    monkeypatch.setenv("KBCHAT_EMBEDDER__BACKEND", "hash")
    monkeypatch.setenv("KBCHAT_AGENT__ROUTER", "model")
    scripted = ScriptedChatModel(
        [
            [ToolCall("c1", "kb_search", json.dumps({"query": "kettle warranty"}))],
            "The warranty lasts two years [1].",
        ]
    )

    def get(self: ModelPool, name: str | None = None) -> ChatModel:
        return scripted

    monkeypatch.setattr(ModelPool, "get", get)
    return scripted


def test_ask_agent_shows_steps_and_cites(
    model: ScriptedChatModel, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "kettle.txt").write_text("The kettle warranty lasts two years.", encoding="utf-8")
    run("kb", "create", "shop", capsys=capsys)
    run("kb", "add", "shop", str(tmp_path / "kettle.txt"), capsys=capsys)
    code, out, err = run(
        "ask", "--agent", "shop", "How long is the kettle warranty?", capsys=capsys
    )
    assert code == 0, err
    assert "→ kb_search" in err and "← kb_search" in err and "ms)" in err
    assert out.strip() == "The warranty lasts two years [1]."
    assert "[1] kettle.txt" in err
    # without a knowledge base the agent still runs (its search covers every KB)
    model.received.clear()
    code, out, err = run("ask", "--agent", "How long is the kettle warranty?", capsys=capsys)
    assert code == 0 and "→ kb_search" in err
    model.received.clear()
    code, out, err = run(
        "ask", "--agent", "--kb", "shop", "How long is the kettle warranty?", capsys=capsys
    )
    assert code == 0 and "[1] kettle.txt" in err


def test_agent_command_in_chat(
    model: ScriptedChatModel, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = iter(["/agent", "What is in the files?", "/agent off", "/exit"])
    monkeypatch.setattr("builtins.input", lambda _prompt: next(lines))
    code, _out, err = run("chat", capsys=capsys)
    assert code == 0, err
    assert "agent mode on" in err and "agent mode off" in err and "→ kb_search" in err
