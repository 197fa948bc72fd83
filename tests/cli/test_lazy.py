"""The root group's table: every command listed with its own help, each loaded when used."""

from __future__ import annotations

import inspect

import pytest
import typer
from typer.core import TyperGroup

from kbchat.cli.lazy import LazyGroup
from kbchat.cli.main import COMMANDS, app
from tests.cli.test_cli import run


def _root() -> LazyGroup:
    root = typer.main.get_command(app)
    assert isinstance(root, LazyGroup)
    return root


def test_each_summary_is_the_first_paragraph_of_its_commands_help() -> None:
    root = _root()
    for name, entry in COMMANDS.items():
        command = root.commands[name]
        assert command.help is not None, name
        first = inspect.cleandoc(command.help).split("\n\n")[0]
        assert entry.summary == first, f"COMMANDS[{name!r}].summary differs from its help"


def test_the_root_lists_the_table_in_order_and_loads_nothing_to_list() -> None:
    root = _root()
    assert root.list_commands(typer.Context(root)) == list(COMMANDS)
    assert list(root.commands) == list(COMMANDS)
    assert root.commands._built == {}  # type: ignore[attr-defined]


def test_help_lists_every_command_with_its_summary(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # one line a command
    code, out, _ = run("--help", capsys=capsys)
    assert code == 0
    rows = {line.split()[1]: line for line in out.splitlines() if line.startswith("│ ")}
    for name, entry in COMMANDS.items():
        shown = entry.summary.replace("\\[", "[")  # rich markup escape
        assert shown in rows[name], (name, rows.get(name))


def test_every_group_helps_through_the_lazy_path(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    groups = [name for name in COMMANDS if isinstance(_root().commands[name], TyperGroup)]
    assert groups == ["kb", "models", "eval", "feedback", "keys"]
    for name in groups:
        code, out, err = run(name, "--help", capsys=capsys)
        assert code == 0, (name, err)
        assert f"Usage: kbchat {name} [OPTIONS] COMMAND [ARGS]..." in out
        assert COMMANDS[name].summary in out
        group = _root().commands[name]
        assert isinstance(group, TyperGroup)
        for sub in group.commands:
            assert f"│ {sub} " in out, (name, sub)


def test_a_command_loaded_lazily_keeps_plain_metavars(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run("ask", "--help", capsys=capsys)
    assert code == 0
    assert "Usage: kbchat ask [OPTIONS] [KB[,KB...]] [QUESTION]" in out
    assert "--top-k" in out and "<int>" not in out


def test_help_paragraphs_wrap_at_the_terminal_not_at_the_docstring() -> None:
    from kbchat.cli.help_text import reflow

    doc = (
        "Move vectors.\n\nThe vectors are copied; the KB switches only after the copy\n"
        "holds the same ids.\n\nSteps:\n- copy the rows,\n  in batches\n- check\n\n"
        "    kbchat kb migrate docs --to pgvector\n    kbchat kb list"
    )
    assert reflow(doc) == (
        "Move vectors.\n\nThe vectors are copied; the KB switches only after the copy holds "
        "the same ids.\n\nSteps:\n- copy the rows, in batches\n- check\n\n"
        "    kbchat kb migrate docs --to pgvector\n    kbchat kb list"
    )
