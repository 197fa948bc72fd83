"""`kbchat ask --file` and `/file` in `kbchat chat`: answers from files, with no knowledge base."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kbchat.config import load_settings
from kbchat.registry import chat_models
from kbchat.store.catalog import Catalog
from kbchat.testing.fakes import ScriptedChatModel
from tests.cli.test_cli import run


@pytest.fixture(autouse=True)
def scripted_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KBCHAT_EMBEDDER__BACKEND", "hash")
    monkeypatch.setenv("KBCHAT_MODELS", json.dumps({"fake": {"backend": "scripted"}}))
    monkeypatch.setenv("KBCHAT_DEFAULT_MODEL", "fake")
    # Hash vectors carry no meaning, so relevance is not calibrated: the bar for answering
    # (chat.min_score) is off here, as in tests/server/support.py NO_ANSWER_BAR. The
    # scripted "OK" is in the note ("came back OK"), so verification stays on.
    monkeypatch.setenv("KBCHAT_CHAT__MIN_SCORE", "0")
    monkeypatch.setenv("KBCHAT_CHAT__MIN_SCORE_CROSS", "0")


@pytest.fixture
def note(tmp_path: Path) -> Path:
    path = tmp_path / "note.txt"
    path.write_text("The kettle test came back OK on Monday.", encoding="utf-8")
    return path


def kb_names() -> list[str]:
    catalog = Catalog(load_settings().catalog_url)
    try:
        return catalog.kb_names()
    finally:
        catalog.close()


def test_ask_with_a_file_answers_from_it_and_leaves_nothing_behind(
    note: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        "ask", "--file", str(note), "How did the test go?", "--json", capsys=capsys
    )
    assert code == 0, err
    answer = json.loads(out)
    assert answer["answer"].startswith("OK") and answer["grounded"]
    assert [c["file"] for c in answer["citations"]] == ["note.txt"]
    assert "attached note.txt" in err
    assert kb_names() == []  # the temporary knowledge base went with the answer


def test_ask_with_a_file_and_a_knowledge_base_uses_both(
    note: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "kb" / "other.txt"
    other.parent.mkdir()
    other.write_text("Nothing relevant to kettles here, just OK weather.", encoding="utf-8")
    run("kb", "create", "misc", capsys=capsys)
    run("kb", "add", "misc", str(other.parent), capsys=capsys)
    code, out, err = run(
        "ask", "misc", "how did the kettle test go?", "-f", str(note), "--json", capsys=capsys
    )
    assert code == 0, err
    assert json.loads(out)["answer"].startswith("OK")
    assert kb_names() == ["misc"]


def test_when_no_attached_file_can_be_read_the_question_is_not_answered(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.docx"
    broken.write_bytes(b"PK\x03\x04 truncated")
    empty = tmp_path / "empty.md"
    empty.write_text("", encoding="utf-8")
    missing = tmp_path / "nofile.txt"
    for given, why in (([broken, empty], "file is empty"), ([missing], "no such file")):
        files = [arg for path in given for arg in ("--file", str(path))]
        code, out, err = run("ask", *files, "what is it?", capsys=capsys)
        assert code == 1 and out == ""  # 3 is "some files failed": here nothing could be read
        (line,) = err.strip().splitlines()  # one line, naming each file and why
        assert "no attached file could be read" in line and "question was not answered" in line
        assert all(path.name in line for path in given) and why in line
    assert kb_names() == []


def test_a_file_that_fails_beside_one_that_loads_says_why_answers_and_exits_3(
    note: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.docx"
    broken.write_bytes(b"PK\x03\x04 truncated")
    code, out, err = run(
        "ask", "--file", str(note), "--file", str(broken), "How did the test go?", capsys=capsys
    )
    assert code == 3  # README: some files failed, the others were used all the same
    assert out.startswith("OK")
    assert "failed: broken.docx: " in err and "attached note.txt (1 chunk)" in err
    assert kb_names() == []


def test_ask_needs_a_question(note: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run("ask", "--file", str(note), capsys=capsys)
    assert code == 1 and "kbchat ask --file FILE QUESTION" in err


def test_file_command_in_chat(
    note: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = iter([f"/file {note}", "/file", "how did the kettle test go?", "/exit"])
    monkeypatch.setattr("builtins.input", lambda prompt: next(lines))
    code, out, err = run("chat", capsys=capsys)
    assert code == 0, err
    assert "attached note.txt" in err and "attached: note.txt (indexed)" in err
    assert out.startswith("OK") and "note.txt" in err  # the answer and its source
    assert kb_names() == []


def test_summarize_keeps_summaries_and_gives_an_overview(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("The kettle test came back OK on Monday.", encoding="utf-8")
    (docs / "b.txt").write_text("The toaster passed its test on Tuesday.", encoding="utf-8")
    run("kb", "create", "lab", capsys=capsys)
    run("kb", "add", "lab", str(docs), capsys=capsys)
    code, out, err = run("summarize", "lab", "--json", capsys=capsys)
    assert code == 0, err
    result = json.loads(out)
    assert [f["file"] for f in result["files"]] == ["a.txt", "b.txt"]
    assert all(f["summary"] == "OK" and not f["cached"] for f in result["files"])
    assert result["overview"]["summary"] == "OK"
    code, out, _ = run("summarize", "lab", "a.txt", "--json", capsys=capsys)
    again = json.loads(out)
    assert again["files"][0]["cached"] and "overview" not in again
    code, out, _ = run("kb", "files", "lab", "--json", capsys=capsys)
    assert [f["summary"] for f in json.loads(out)] == ["OK", "OK"]
    code, _, err = run("summarize", "lab", "--strategy", "best", capsys=capsys)
    flat = " ".join(err.replace("│", " ").split())  # the usage error comes in a box
    assert code == 2 and "'best' is not one of 'auto', 'map-reduce', 'refine', 'extract'" in flat


def test_asking_what_a_file_is_about_answers_from_its_summary(
    note: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run("ask", "-f", str(note), "总结一下这个文件", "--json", capsys=capsys)
    assert code == 0, err
    answer = json.loads(out)
    assert answer["answer"] == "OK [1]" and answer["citations"][0]["file"] == "note.txt"


def test_asking_what_a_knowledge_base_is_about_answers_from_the_summaries(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("The kettle test came back OK on Monday.", encoding="utf-8")
    (docs / "b.txt").write_text("The toaster passed its test on Tuesday.", encoding="utf-8")
    run("kb", "create", "lab", capsys=capsys)
    run("kb", "add", "lab", str(docs), capsys=capsys)
    code, out, err = run("ask", "lab", "这个知识库讲了什么", "--json", capsys=capsys)
    assert code == 0, err
    answer = json.loads(out)
    assert answer["answer"] == "OK"
    assert [c["file"] for c in answer["citations"]] == ["a.txt", "b.txt"]
    code, out, _ = run("summarize", "lab", "--json", capsys=capsys)
    kept = json.loads(out)
    assert all(f["cached"] for f in kept["files"]) and kept["overview"]["cached"]


def test_a_long_summary_is_announced_with_its_expected_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    # about 500 pages' worth of words would take minutes to embed here; the expected time
    # comes from the token count and the model speeds, so 40 pages already make it long
    text = " ".join(f"Kettle test {n} came back OK on day {n}." for n in range(3000))
    (docs / "book.txt").write_text(text, encoding="utf-8")
    run("kb", "create", "lab", capsys=capsys)
    run("kb", "add", "lab", str(docs), capsys=capsys)
    code, _, err = run("summarize", "lab", "--strategy", "map-reduce", capsys=capsys)
    assert code == 0, err
    flat = " ".join(err.split())
    assert "1 file to summarise, about" in flat and "Ctrl-C stops" in flat
    assert flat.index("1 file to summarise") < flat.index("map 1/")  # before it starts
    code, _, err = run("summarize", "lab", "--strategy", "map-reduce", capsys=capsys)
    assert "to summarise" not in err  # kept: nothing to announce


def test_a_summary_cut_at_its_cap_streams_whole_sentences_and_says_so(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    capsys: pytest.CaptureFixture[str],
) -> None:
    long_reply = "The kettle passed. " * 70 + "And then"  # 213 words: over the 200-token cap
    chat_models.register("long", lambda **kw: ScriptedChatModel([long_reply], **kw))
    request.addfinalizer(lambda: chat_models.unregister("long"))
    monkeypatch.setenv("KBCHAT_MODELS", json.dumps({"fake": {"backend": "long"}}))
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("The kettle test came back OK on Monday.", encoding="utf-8")
    run("kb", "create", "lab", capsys=capsys)
    run("kb", "add", "lab", str(docs), capsys=capsys)
    code, out, err = run("summarize", "lab", "a.txt", "--strategy", "refine", capsys=capsys)
    assert code == 0, err
    assert out.rstrip().endswith("The kettle passed.") and "And then" not in out
    assert "reached its length cap" in " ".join(err.split())
