"""`kbchat feedback export`: rated answers as a question set `kbchat eval answers` reads."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from kbchat.cli.main import main
from kbchat.config import load_settings
from kbchat.eval.answers import answer_is_correct
from kbchat.eval.retrieval import load_queries
from kbchat.kb.library import Library
from kbchat.store.conversations import ConversationStore, StoredMessage

KETTLE = {
    "marker": 1,
    "kb": "manuals",
    "file": "docs/kettle.pdf",
    "page": 3,
    "score": 0.8,
    "text": "The K3 kettle has a two year warranty.",
    "quote": "two year warranty",
}


def run(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = 0
    try:
        main(list(args))
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(autouse=True)
def rated(monkeypatch: pytest.MonkeyPatch) -> None:
    """Three rated answers: a good one, a good refusal, a bad one (another KB)."""
    monkeypatch.setenv("KBCHAT_EMBEDDER__BACKEND", "hash")
    library = Library(load_settings())
    library.ensure("manuals")
    store = ConversationStore(library.catalog.engine)
    turns = [
        ("c1", ["manuals"], "How long is the K3 warranty?", "Two years [1].", [KETTLE], "answered"),
        ("c2", ["manuals"], "Which port does it use?", "The files do not say.", [], "refused"),
        ("c3", ["hr"], "上班时间？", "下午三点。", [], "answered"),
    ]
    verdicts = [("up", ""), ("up", "right to decline"), ("down", "应该是上午九点")]
    for (cid, kbs, question, answer, citations, outcome), (verdict, comment) in zip(
        turns, verdicts, strict=True
    ):
        ids = store.append(
            cid,
            "alice" if cid == "c1" else None,
            [
                StoredMessage("user", question, 1_700_000_000),
                StoredMessage("assistant", answer, 1_700_000_005, citations, {"outcome": outcome}),
            ],
            kbs=kbs,
            model="qwen",
        )
        store.rate(cid, "alice" if cid == "c1" else None, ids[1], verdict, comment)  # type: ignore[arg-type]
    library.close()


def test_export_writes_every_rating_as_a_question_set_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "feedback.jsonl"
    code, stdout, stderr = run("feedback", "export", "--out", str(out), capsys=capsys)
    assert code == 0 and stdout == "" and f"exported 3 rated answer(s) to {out}" in stderr
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    good, refusal, bad = rows
    assert good["question"] == "How long is the K3 warranty?" and good["verdict"] == "up"
    assert good["sources"] == [
        {"file": "docs/kettle.pdf", "page": 3, "quote": "two year warranty", "kb": "manuals"}
    ]
    assert good["model"] == "qwen" and good["time"] == "2023-11-14T22:13:25+00:00"
    # the citation marker goes: a later answer citing [2] must still match
    assert good["answers"] == ["Two years."] and good["gold_doc_ids"] == ["kettle"]
    assert refusal["answerable"] is False and refusal["comment"] == "right to decline"
    assert bad["needs_reference"] is True and bad["comment"] == "应该是上午九点"
    assert "answers" not in bad

    with caplog.at_level(logging.WARNING, logger="kbchat.eval.retrieval"):
        questions = load_queries(out)
    assert [(q.question, q.answerable) for q in questions] == [
        ("How long is the K3 warranty?", True),
        ("Which port does it use?", False),
    ]
    assert questions[0].gold_ids == ("kettle",)
    assert answer_is_correct("It lasts Two years. [2]", questions[0].required_groups)
    assert "skipped 1 question(s) marked needs_reference" in caplog.text


def test_export_filters_by_verdict_and_kb(capsys: pytest.CaptureFixture[str]) -> None:
    code, stdout, _ = run("feedback", "export", "--verdict", "down", capsys=capsys)
    assert code == 0 and [json.loads(r)["question"] for r in stdout.splitlines()] == ["上班时间？"]
    code, stdout, _ = run("feedback", "export", "--kb", "manuals", capsys=capsys)
    assert [json.loads(r)["verdict"] for r in stdout.splitlines()] == ["up", "up"]
    code, stdout, _ = run("feedback", "export", "--kb", "hr", capsys=capsys)  # a dropped KB
    assert code == 0 and len(stdout.splitlines()) == 1


def test_export_names_what_is_wrong(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, stdout, stderr = run("feedback", "export", "--kb", "manulas", capsys=capsys)
    assert code == 1 and stdout == ""
    assert "no knowledge base 'manulas'" in stderr and "manuals" in stderr
    code, _, stderr = run("feedback", "export", "--verdict", "meh", capsys=capsys)
    assert code == 2 and "meh" in stderr
    code, _, stderr = run(
        "feedback", "export", "-o", str(tmp_path / "no" / "f.jsonl"), capsys=capsys
    )
    assert code == 1 and "cannot write" in stderr and "f.jsonl" in stderr
