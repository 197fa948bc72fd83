"""Small things a user reads: help without typer's <type>/{name} marks, the embedder
choices, 'kb files' errors, doctor's config line."""

from __future__ import annotations

import json
import re
import typing
from pathlib import Path

import pytest
import typer
from typer.core import TyperOption

from kbchat.cli.main import app
from tests.cli.test_cli import run

PLACEHOLDER = re.compile(r"<(str|int|bool|float|path)>|\{[A-Za-z_,.\[\]]+\}|list\[")


def _command_paths(command: object, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [prefix]
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        paths += _command_paths(sub, (*prefix, name))
    return paths


def test_help_has_no_typer_placeholders(capsys: pytest.CaptureFixture[str]) -> None:
    paths = _command_paths(typer.main.get_command(app))
    assert ("models", "pull") in paths and ("kb", "create") in paths
    for path in paths:
        code, out, err = run(*path, "--help", capsys=capsys)
        assert code == 0, (path, err)
        assert not PLACEHOLDER.search(out), (path, PLACEHOLDER.search(out), out)
    _, out, _ = run("kb", "create", "--help", capsys=capsys)
    assert "Usage: kbchat kb create [OPTIONS] NAME" in out and "--embedder" in out
    _, out, _ = run("serve", "--help", capsys=capsys)
    assert "[server.host]" in out  # not eaten as markup


def test_embedder_error_lists_the_real_choices(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run("kb", "create", "x", "--embedder", "word2vec", capsys=capsys)
    assert code == 1
    assert "unknown embedder 'word2vec'; choose e5, hash, openai, use" in err
    assert "e5+use" in err


def test_kb_files_error_column_does_not_repeat_the_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "bad.docx").write_bytes(b"PK\x03\x04 truncated")
    run("kb", "create", "k", capsys=capsys)
    run("kb", "add", "k", str(folder), capsys=capsys)
    _, out, _ = run("kb", "files", "k", "--json", capsys=capsys)
    assert json.loads(out)[0]["error"].startswith("bad.docx: ")  # --json keeps it whole
    _, out, _ = run("kb", "files", "k", capsys=capsys)
    row = next(line for line in out.splitlines() if "bad.docx" in line)
    assert row.count("bad.docx") == 1, row


def test_kb_files_shows_each_file_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KBCHAT_EMBEDDER__BACKEND", "hash")
    (tmp_path / "small.txt").write_text("The K3 kettle has a two year warranty.", encoding="utf-8")
    (tmp_path / "big.txt").write_text("Descale the kettle every month.\n" * 200, encoding="utf-8")
    run("kb", "create", "k", capsys=capsys)
    run("kb", "add", "k", str(tmp_path), capsys=capsys)
    _, out, _ = run("kb", "files", "k", capsys=capsys)
    assert re.search(r"\bsize\b", out), out
    rows = {line.split()[1]: line for line in out.splitlines() if ".txt" in line}
    assert "38 B" in rows["small.txt"] and "6 KB" in rows["big.txt"], out


def test_doctor_says_whether_a_config_file_was_loaded(
    kbchat_home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KBCHAT_EMBEDDER__BACKEND", "hash")
    _, out, _ = run("doctor", "--json", capsys=capsys)
    config = {c["name"]: c for c in json.loads(out)}["config"]["detail"]
    assert config.startswith("no config file (") and "KBCHAT_EMBEDDER__BACKEND" in config
    (kbchat_home / "kbchat.toml").write_text("[chat]\ntop_k = 3\n", encoding="utf-8")
    _, out, _ = run("doctor", "--json", capsys=capsys)
    config = {c["name"]: c for c in json.loads(out)}["config"]["detail"]
    assert config.startswith(f"loaded from {kbchat_home / 'kbchat.toml'}")


def test_kb_list_keeps_key_columns_whole_at_80_columns(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from rich.cells import cell_len

    from kbchat.cli.base import out as console

    monkeypatch.setattr(console, "_width", 80)
    long_description = "产品手册和常见问题解答，覆盖全部型号与配件的保修、维修和清洁说明" * 2
    code, _, err = run(
        "kb", "create", "客服知识库", "--embedder", "e5+use", "--description", long_description,
        capsys=capsys,
    )  # fmt: skip
    assert code == 0, err
    _, out, _ = run("kb", "list", capsys=capsys)
    lines = out.splitlines()
    assert all(cell_len(line) <= 80 for line in lines), out
    header = next(line for line in lines if "name" in line)
    assert all(word in header for word in ("files", "chunks", "embedder", "store")), out
    row = next(line for line in lines if "客服知识库" in line)
    assert "e5+use" in row and "faiss" in row and "…" in row, out


def _choices(annotation: object) -> list[str]:
    """The values of a ``Literal`` annotation, also inside ``X | None`` or ``list[X]``."""
    if typing.get_origin(annotation) is typing.Literal:
        return [str(value) for value in typing.get_args(annotation)]
    return [c for arg in typing.get_args(annotation) for c in _choices(arg)]


def _choice_options(command: object) -> list[tuple[str, list[str]]]:
    return [
        (p.opts[-1], choices)
        for p in getattr(command, "params", [])
        if isinstance(p, TyperOption) and (choices := _choices(p.type_descriptor.annotation))
    ]


@pytest.mark.parametrize("columns", ["80", "60"])
def test_help_breaks_a_choice_list_only_between_choices(
    columns: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COLUMNS", columns)
    root = typer.main.get_command(app)
    checked = 0
    for path in _command_paths(root):
        command = root
        for name in path:
            command = command.commands[name]  # type: ignore[attr-defined]
        for flag, choices in _choice_options(command):
            _, out, _ = run(*path, "--help", capsys=capsys)
            lines = out.splitlines()
            first = next(i for i, line in enumerate(lines) if re.search(rf"│ +{flag}\b", line))
            column = re.search(rf"{flag}\s+", lines[first]).end()  # type: ignore[union-attr]
            cells: list[str] = []
            for line in lines[first:]:
                cell = line[column:].split("  ")[0].strip()
                if not cell or (cells and "--" in line[:column]):
                    break
                cells.append(cell)
            shown = [piece for cell in cells for piece in cell.split("|") if piece]
            assert shown == choices, (path, flag, cells)
            checked += 1
    assert checked >= 4  # summarize --strategy, ask --no-hit, kb search --mode, ...


def test_demo_builds_the_sample_again_beside_other_knowledge_bases(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """README: the sample is built on a first start only; `kbchat demo` gets it back."""
    monkeypatch.setenv("KBCHAT_EMBEDDER__BACKEND", "hash")
    run("kb", "create", "mine", capsys=capsys)
    code, out, err = run("demo", "--query", "如何创建知识库？", capsys=capsys)
    assert code == 0, err
    _, listed, _ = run("kb", "list", "--json", capsys=capsys)
    kbs = {kb["name"]: kb for kb in json.loads(listed)}
    assert set(kbs) == {"mine", "kbchat-docs"} and kbs["kbchat-docs"]["chunks"] > 10
    assert "kbchat kb create" in out  # the sample search found the quick start
