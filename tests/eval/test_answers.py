"""Answer metrics and `kbchat eval answers`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kbchat.chat.rag import stream_answer
from kbchat.cli.chat import REPORT_LAYOUT
from kbchat.cli.main import main
from kbchat.config import load_settings
from kbchat.errors import BadInput
from kbchat.eval.answers import (
    answer_is_correct,
    declines_in_text,
    evaluate_answers,
    is_declined,
)
from kbchat.eval.retrieval import EvalQuery, load_queries
from kbchat.kb.library import Library
from kbchat.prompts import template
from kbchat.testing.fakes import ScriptedChatModel
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
    assert report.unanswerable == 0 and report.declined_unanswerable is None
    assert report.to_json()["declined_unanswerable"] is None


def _query(qid: str, *answers: str) -> EvalQuery:
    return EvalQuery(
        id=qid, question=f"{qid}?", gold_ids=(), answers=answers, answerable=bool(answers)
    )


def test_halves_are_reported_separately() -> None:
    """Answerable: correct / false refusal; unanswerable: declined or not."""
    queries = [
        _query("a1", "two years"),
        _query("a2", "green"),
        _query("a3", "80 degrees"),
        _query("a4", "K3"),
        _query("u1"),
        _query("u2"),
        _query("u3"),
    ]
    replies = {
        "a1?": Answer(text="Two years [1].", model="m", timings={"ttft_s": 1.0}),
        # declined by the structured flag although the text has no refusal phrase
        "a2?": Answer(
            text="Ask about kettles.", model="m", outcome="refused", timings={"ttft_s": 0.1}
        ),
        "a3?": Answer(text="资料中没有找到答案。", model="m", timings={"ttft_s": 2.0}),
        "a4?": Answer(text="It is blue.", model="m", timings={"ttft_s": 3.0}),
        "u1?": Answer(text="I don't know.", model="m", timings={"ttft_s": 0.5}),
        "u2?": Answer(text="Port 8080 [1].", model="m", timings={"ttft_s": 4.0}),
        "u3?": Answer(
            text="Ask about kettles.",
            model="m",
            outcome="refused",
            timings={"ttft_s": 0.2},
            notices=["declined: the closest passage holds 33% of the question's key terms"],
        ),
    }
    report = evaluate_answers(lambda q: replies[q], queries)
    assert (report.answerable, report.unanswerable) == (4, 3)
    assert report.accuracy == 0.25
    assert report.false_refusals == 0.5  # a2 (flag) and a3 (text); a4 is wrong, not a refusal
    assert report.declined_unanswerable == 2 / 3
    assert report.median_ttft_answerable_s == 1.5 and report.median_ttft_unanswerable_s == 0.5
    rows = {r.id: r for r in report.details}
    assert rows["u1"].correct and rows["u1"].declined and not rows["u2"].correct
    assert rows["a2"].declined and not rows["a2"].correct
    # Why kbchat declined is kept with the row; the model's own refusal has no such cause.
    assert rows["u3"].declined_because.startswith("the closest passage holds 33%")
    assert rows["u1"].declined_because == ""
    assert report.to_json()["details"][-1]["declined_because"] == rows["u3"].declined_because


def test_refused_answer_is_never_correct_even_if_it_echoes_the_answer() -> None:
    query = _query("a", "two years")
    answer = Answer(text="Nothing on two years here.", model="m", outcome="refused")
    report = evaluate_answers(lambda q: answer, [query])
    assert report.accuracy == 0.0 and report.false_refusals == 1.0


@pytest.mark.parametrize(
    ("text", "declined"),
    [
        ("资料中没有找到答案。", True),
        ("我不知道。", True),
        ("文中没有提到他的出生地。", True),
        ("The sources do not contain the answer.", True),
        ("I don't know.", True),
        ("The passages do not mention the port.", True),
        ("That information is not provided in the passages.", True),
        ("保修期为两年[1]。", False),
        ("The warranty lasts two years [1].", False),
        ("I could not find the port in the files.", True),
        ("Brew it at 80 degrees; do not boil.", False),
        ("The K3 model is not available in Europe.", False),
    ],
)
def test_text_fallback_recognises_refusals(text: str, declined: bool) -> None:
    assert declines_in_text(text) is declined


@pytest.mark.parametrize("language", ["zh", "en"])
def test_no_answer_text_declines_and_the_fallback_label_does_not(language: str) -> None:
    assert declines_in_text(template("no_answer", language))
    label = template("fallback_label", language)
    assert not is_declined(Answer(text=f"{label}\nThe port is 8080.", model="m"))


def test_scripted_model_through_stream_answer(tmp_path: Path) -> None:
    """The metric on real answer results: a model refusal, an invented answer, a right one."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "kettle.txt").write_text("The K3 kettle has a two year warranty.", encoding="utf-8")
    library = Library(load_settings(embedder={"backend": "hash"}))
    library.create("home")
    kb = library.get("home")
    kb.add([docs])
    model = ScriptedChatModel(
        [
            "The K3 kettle warranty is two years [1].",
            "The sources do not contain the answer.",
            "The K3 kettle is red [1].",
        ]
    )
    queries = [
        EvalQuery(id="a", question="K3 kettle warranty?", gold_ids=("kettle",), answers=("two",)),
        EvalQuery(id="u1", question="K3 kettle colour?", gold_ids=(), answerable=False),
        EvalQuery(id="u2", question="K3 kettle price?", gold_ids=(), answerable=False),
    ]

    def answer(question: str) -> Answer:
        final = list(stream_answer(model, [kb], question))[-1]
        assert isinstance(final, Answer)
        return final

    report = evaluate_answers(answer, queries)
    library.close()
    assert report.accuracy == 1.0 and report.citation_hit_rate == 1.0
    # The model's refusal and its invented colour (no passage says "red") are both declined.
    assert report.false_refusals == 0.0 and report.declined_unanswerable == 1.0
    assert [r.declined for r in report.details] == [False, True, True]


def test_question_file_marks_unanswerable_questions(tmp_path: Path) -> None:
    rows = [
        {"id": "a", "question": "A?", "answers": ["x"], "gold_doc_ids": ["p"]},
        {"id": "u1", "question": "U1?", "answerable": False},
        {"id": "u2", "question": "U2?", "answers": [], "gold_doc_ids": []},
        {"id": "u3", "question": "U3?", "answers": ["x"], "answerable": False, "gold_doc_ids": []},
    ]
    path = tmp_path / "q.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    queries = load_queries(path)
    assert [q.answerable for q in queries] == [True, False, False, False]
    assert queries[0].required_groups == (("x",),) and queries[1].gold_ids == ()


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"answerable": "no", "gold_doc_ids": []}, "'answerable' must be true or false"),
        ({"answerable": True, "gold_doc_ids": ["p"]}, "needs 'answers' or 'answers_required'"),
        ({"answers": ["x"]}, "missing field(s) gold_doc_ids"),
    ],
)
def test_bad_answerable_rows_name_the_line(
    tmp_path: Path, row: dict[str, object], message: str
) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps({"id": "q", "question": "Q?", **row}) + "\n", encoding="utf-8")
    with pytest.raises(BadInput) as caught:
        load_queries(path)
    assert f"{path}:1:" in str(caught.value) and message in str(caught.value)


def test_cli_eval_answers_end_to_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KBCHAT_EMBEDDER__BACKEND", "hash")
    monkeypatch.setenv("KBCHAT_MODELS", json.dumps({"fake": {"backend": "scripted"}}))
    monkeypatch.setenv("KBCHAT_DEFAULT_MODEL", "fake")
    monkeypatch.setenv("KBCHAT_CHAT__VERIFY", "false")  # "OK" is in no passage: a plumbing test
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "p1.txt").write_text("The kettle warranty lasts two years.", encoding="utf-8")
    questions = tmp_path / "q.jsonl"
    rows = [
        {
            "id": "q1",
            "question": "kettle warranty?",
            "answers": ["OK"],
            "answers_required": [["ok"]],
            "gold_doc_ids": ["p1"],
            "split": "test",
        },
        {"id": "q2", "question": "kettle port?", "answerable": False, "split": "test"},
    ]
    questions.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    for args in (["kb", "create", "k"], ["kb", "add", "k", str(docs)]):
        with pytest.raises(SystemExit) as done:
            main(args)
        assert done.value.code in (0, None)
    capsys.readouterr()
    with pytest.raises(SystemExit) as done:
        main(["eval", "answers", "k", str(questions), "--json"])
    assert done.value.code in (0, None)
    report = json.loads(capsys.readouterr().out)
    assert report["questions"] == 2 and report["accuracy"] == 1.0
    assert report["citation_hit_rate"] == 0.0  # "OK" reuses no word of the passage: no citation
    assert report["unanswerable"] == 1 and report["declined_unanswerable"] == 0.0
    assert report["false_refusals"] == 0.0
    with pytest.raises(SystemExit) as done:
        main(["eval", "answers", "k", str(questions)])
    assert done.value.code in (0, None)
    printed = capsys.readouterr().err
    assert "questions 2: answered from the knowledge base " in printed
    assert "answerable 1: accuracy 100.0%, false refusals 0.0%" in printed
    assert "unanswerable 1: declined 0.0%" in printed
    assert "median TTFT " in printed and "median total time " in printed
    # every number of the --json summary is printed, under one label each
    layout = [key for head, rest in REPORT_LAYOUT for key in (head, *rest)]
    assert sorted(layout) == sorted(k for k in report if k != "details")


def test_interactive_chat_session(tmp_path: Path, kbchat_home: Path) -> None:
    """`kbchat chat` reads questions and /commands from its input and keeps going."""
    import os
    import subprocess
    import sys

    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        "KBCHAT_EMBEDDER__BACKEND": "hash",
        "KBCHAT_MODELS": json.dumps({"fake": {"backend": "scripted"}}),
        "KBCHAT_DEFAULT_MODEL": "fake",
        "KBCHAT_CHAT__VERIFY": "false",
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
