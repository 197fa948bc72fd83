"""Answer metrics and `kbchat eval answers`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kbchat.cli import main
from kbchat.evaluate import EvalQuery
from kbchat.evaluate_answers import answer_is_correct, evaluate_answers
from kbchat.types import Answer, Citation


def test_required_groups_rule() -> None:
    assert answer_is_correct(
        "It was made by Koei and Omega-Force.", [["koei"], ["omega-force", "ω-force"]]
    )
    assert not answer_is_correct("Koei made it.", [["koei"], ["omega-force"]])
    assert answer_is_correct("两年", [["两年", "2年"]])
    assert not answer_is_correct("anything", [])


def test_report_counts_accuracy_citations_and_timings() -> None:
    queries = [
        EvalQuery(id="q1", question="a?", gold_ids=("doc1",), answers_required=(("yes",),)),
        EvalQuery(id="q2", question="b?", gold_ids=("doc2",), answers_required=(("no",),)),
    ]
    answers = {
        "a?": Answer(
            text="yes [1]",
            model="m",
            timings={"ttft_s": 1.0, "total_s": 2.0},
            citations=[Citation(marker=1, kb="k", file="doc1.txt", text="", score=0.9)],
        ),
        "b?": Answer(
            text="maybe", model="m", grounded=False, timings={"ttft_s": 3.0, "total_s": 4.0}
        ),
    }
    report = evaluate_answers(lambda q: answers[q], queries)
    assert report.questions == 2 and report.accuracy == 0.5
    assert report.citation_hit_rate == 0.5 and report.answered_from_kb == 0.5
    assert report.median_ttft_s == 2.0 and report.median_total_s == 3.0
    assert report.to_json()["details"][0]["cited_gold"] is True


def test_cli_eval_answers_end_to_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KBCHAT_EMBEDDER__BACKEND", "hash")
    monkeypatch.setenv("KBCHAT_MODELS", json.dumps({"fake": {"backend": "scripted"}}))
    monkeypatch.setenv("KBCHAT_DEFAULT_MODEL", "fake")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "p1.txt").write_text("The kettle warranty lasts two years.", encoding="utf-8")
    questions = tmp_path / "q.jsonl"
    questions.write_text(
        json.dumps(
            {
                "id": "q1",
                "question": "kettle warranty?",
                "answers": ["OK"],
                "answers_required": [["ok"]],
                "gold_doc_ids": ["p1"],
                "split": "test",
            }
        )
        + "\n",
        encoding="utf-8",
    )
    for args in (["kb", "create", "k"], ["kb", "add", "k", str(docs)]):
        with pytest.raises(SystemExit) as done:
            main(args)
        assert done.value.code in (0, None)
    capsys.readouterr()
    with pytest.raises(SystemExit) as done:
        main(["eval", "answers", "k", str(questions), "--json"])
    assert done.value.code in (0, None)
    report = json.loads(capsys.readouterr().out)
    assert report["questions"] == 1 and report["accuracy"] == 1.0
    assert report["citation_hit_rate"] == 0.0  # "OK" reuses no word of the passage: no citation


def test_interactive_chat_session(tmp_path: Path, kbchat_home: Path) -> None:
    """`kbchat chat` reads questions and /commands from its input and keeps going."""
    import os
    import subprocess
    import sys

    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
        "KBCHAT_EMBEDDER__BACKEND": "hash",
        "KBCHAT_MODELS": json.dumps({"fake": {"backend": "scripted"}}),
        "KBCHAT_DEFAULT_MODEL": "fake",
    }
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "kettle.txt").write_text("The kettle warranty lasts two years.", encoding="utf-8")
    for args in (["kb", "create", "k"], ["kb", "add", "k", str(docs)]):
        subprocess.run([sys.executable, "-m", "kbchat", *args], env=env, check=True, timeout=60)
    session = "kettle warranty?\n/kb nope\n/kb off\nhello\n/reset\n/exit\n"
    result = subprocess.run(
        [sys.executable, "-m", "kbchat", "chat", "--kb", "k"],
        input=session,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("OK") == 2  # one KB answer, one plain answer
    assert "no knowledge base named 'nope'" in result.stderr
    assert "answering from the model alone" in result.stderr and "history cleared" in result.stderr
