"""Retrieval evaluation: metric arithmetic, passage matching, question files and the CLI."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
import types
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from kbchat.cli.main import main
from kbchat.errors import BadInput
from kbchat.eval.retrieval import (
    EvalQuery,
    evaluate_retrieval,
    load_queries,
    rank_passages,
    score_ranking,
)
from kbchat.kb.knowledge_base import KnowledgeBase
from kbchat.types import Hit


def hit(file: str, score: float = 0.5) -> Hit:
    return Hit(kb="kb", file=file, text="", score=score, chunk_id=0)


def query(qid: str, *gold: str, split: str | None = "test") -> EvalQuery:
    return EvalQuery(id=qid, question=f"question {qid}", gold_ids=gold, split=split)


def write_jsonl(path: Path, rows: Sequence[object]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return path


# -- metric arithmetic ----------------------------------------------------------------------


def test_single_gold_at_rank_three() -> None:
    scores = score_ranking(["a", "b", "g", "c"], ["g"])
    assert scores["recall@1"] == 0.0
    assert scores["recall@5"] == 1.0 and scores["recall@10"] == 1.0
    assert scores["mrr@10"] == pytest.approx(1 / 3)
    assert scores["ndcg@10"] == pytest.approx(1 / math.log2(4))  # 0.5


def test_two_gold_ids_partly_found() -> None:
    ranked = ["g1", "x", "y", "z", "w", "v", "g2"]
    scores = score_ranking(ranked, ["g1", "g2"])
    assert scores["recall@1"] == 0.5 and scores["recall@5"] == 0.5
    assert scores["recall@10"] == 1.0
    assert scores["mrr@10"] == 1.0
    ideal = 1 + 1 / math.log2(3)
    assert scores["ndcg@10"] == pytest.approx((1 + 1 / math.log2(8)) / ideal)


def test_gold_beyond_ten_scores_zero() -> None:
    ranked = [f"x{i}" for i in range(10)] + ["g"]
    assert score_ranking(ranked, ["g"]) == {
        "recall@1": 0.0,
        "recall@5": 0.0,
        "recall@10": 0.0,
        "mrr@10": 0.0,
        "ndcg@10": 0.0,
    }


def test_perfect_ranking_of_many_gold_ids_has_ndcg_one() -> None:
    gold = [f"g{i}" for i in range(12)]
    scores = score_ranking(gold, gold)
    assert scores["ndcg@10"] == pytest.approx(1.0)
    assert scores["recall@10"] == pytest.approx(10 / 12)


def test_report_means_over_questions() -> None:
    results = {"q1": ["g1.txt", "x.txt"], "q2": ["x.txt", "y.txt", "g2.txt"], "q3": ["z.txt"]}
    queries = [query("q1", "g1"), query("q2", "g2"), query("q3", "g3")]
    by_question = {q.question: results[q.id] for q in queries}
    report = evaluate_retrieval(lambda text: [hit(f) for f in by_question[text]], queries)
    assert report.queries == 3
    assert report.metrics["recall@1"] == pytest.approx(1 / 3)
    assert report.metrics["recall@5"] == pytest.approx(2 / 3)
    assert report.metrics["mrr@10"] == pytest.approx((1 + 1 / 3) / 3)
    assert report.metrics["ndcg@10"] == pytest.approx((1 + 0.5) / 3)
    assert [d.first_gold_rank for d in report.details] == [1, 3, None]
    assert report.latency_p95_ms >= report.latency_p50_ms >= 0
    summary = report.to_json()
    assert summary["details"][1]["retrieved"][2] == {"id": "g2", "score": 0.5}
    assert summary["metrics"]["recall@5"] == pytest.approx(0.6667)


# -- matching hits to passages --------------------------------------------------------------


def test_file_stem_matches_gold_id_in_any_folder() -> None:
    ranked = rank_passages([hit("sub/dir/cmrc-dev-DEV_1.txt"), hit("hp-00002.md")])
    assert [p.stem for p in ranked] == ["cmrc-dev-DEV_1", "hp-00002"]
    report = evaluate_retrieval(lambda _: [hit("notes/hp-00002.txt")], [query("q", "hp-00002")])
    assert report.metrics["recall@1"] == 1.0


def test_chunks_of_one_passage_count_once_at_best_rank() -> None:
    hits = [hit("a.txt", 0.9), hit("b.txt", 0.8), hit("a.txt", 0.7), hit("g.txt", 0.6)]
    ranked = rank_passages(hits)
    assert [(p.stem, p.score) for p in ranked] == [("a", 0.9), ("b", 0.8), ("g", 0.6)]
    report = evaluate_retrieval(lambda _: hits, [query("q", "g", "a")])
    assert report.details[0].first_gold_rank == 1
    assert report.metrics["recall@1"] == 0.5
    assert report.metrics["ndcg@10"] == pytest.approx(
        (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    )


def test_top_k_cuts_passages_after_dedupe() -> None:
    hits = [hit("a.txt"), hit("a.txt"), hit("b.txt"), hit("g.txt")]
    report = evaluate_retrieval(lambda _: hits, [query("q", "g")], top_k=2)
    assert [p.stem for p in report.details[0].retrieved] == ["a", "b"]
    assert report.metrics["recall@10"] == 0.0
    report = evaluate_retrieval(lambda _: hits, [query("q", "g")], top_k=3)
    assert report.metrics["recall@5"] == 1.0


# -- split filter and bad input -------------------------------------------------------------


def test_split_filter_and_questions_without_gold() -> None:
    asked: list[str] = []

    def search(text: str) -> list[Hit]:
        asked.append(text)
        return [hit("g.txt")]

    queries = [
        query("d", "g", split="dev"),
        query("t", "g", split="test"),
        query("n", split="test"),
    ]
    report = evaluate_retrieval(search, queries, split="test")
    assert asked == ["question t"]
    assert report.queries == 1 and report.skipped_no_gold == 1 and report.split == "test"
    with pytest.raises(BadInput, match="no questions of split 'train'"):
        evaluate_retrieval(search, queries, split="train")
    with pytest.raises(BadInput, match="top_k"):
        evaluate_retrieval(search, queries, top_k=0)


def test_load_queries_reads_schema_split_and_limit(tmp_path: Path) -> None:
    rows = [
        {
            "id": "q1",
            "question": "哪一年？",
            "answers": ["1990"],
            "answers_required": [["1990"]],
            "gold_doc_ids": ["p1"],
            "split": "dev",
            "subset": "x",
        },
        {"id": 2, "question": "Who?", "gold_doc_ids": ["p2", "p2", "p3"], "split": "test"},
        {"id": "q3", "question": "Where?", "gold_doc_ids": ["p4"], "split": "test"},
    ]
    path = write_jsonl(tmp_path / "q.jsonl", rows)
    queries = load_queries(path)
    assert [q.id for q in queries] == ["q1", "2", "q3"]
    assert queries[0].answers_required == (("1990",),) and queries[0].extra == {"subset": "x"}
    assert queries[1].gold_ids == ("p2", "p3")
    assert [q.id for q in load_queries(path, split="test")] == ["2", "q3"]
    assert [q.id for q in load_queries(path, split="test", limit=1)] == ["2"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "not valid JSON"),
        ('["a list"]', "expected a JSON object"),
        ('{"id": "q", "question": "Why?"}', "missing field(s) gold_doc_ids"),
        ('{"question": "Why?", "gold_doc_ids": []}', "missing field(s) id"),
        ('{"id": "q", "question": "Why?", "gold_doc_ids": "p1"}', "'gold_doc_ids' must be a list"),
        ('{"id": "q", "question": "  ", "gold_doc_ids": ["p1"]}', "'question' is empty"),
        (
            '{"id": "q", "question": "Why?", "gold_doc_ids": ["p"], "answers_required": ["a"]}',
            "'answers_required' must be a list of lists",
        ),
    ],
)
def test_malformed_line_names_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    good = json.dumps({"id": "ok", "question": "Fine?", "gold_doc_ids": ["p"]})
    path = tmp_path / "questions.jsonl"
    path.write_text(f"{good}\n\n{line}\n", encoding="utf-8")
    with pytest.raises(BadInput) as caught:
        load_queries(path)
    assert f"{path}:3:" in str(caught.value)
    assert message in str(caught.value)


def test_missing_file_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match=r"nothing\.jsonl: cannot read"):
        load_queries(tmp_path / "nothing.jsonl")


# -- the command line, end to end on a tiny knowledge base ------------------------------------


@dataclass(frozen=True, slots=True)
class _StandInOptions:
    top_k: int = 5
    mode: str = "hybrid"
    threshold: float = 0.0


def _stand_in_search(
    kbs: Sequence[KnowledgeBase], query: str, options: _StandInOptions
) -> list[Hit]:
    hits = [h for kb in kbs for h in kb.search(query, top_k=options.top_k)]
    return sorted(hits, key=lambda h: -h.score)[: options.top_k]


@pytest.fixture
def retriever(monkeypatch: pytest.MonkeyPatch) -> None:
    """Until kbchat.retrieve.search lands, a dense stand-in with its API takes its place."""
    monkeypatch.setenv("KBCHAT_EMBEDDER__BACKEND", "hash")
    if importlib.util.find_spec("kbchat.retrieve.search") is None:
        module = types.ModuleType("kbchat.retrieve.search")
        module.SearchOptions = _StandInOptions  # type: ignore[attr-defined]
        module.search = _stand_in_search  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "kbchat.retrieve.search", module)


PASSAGES = {
    "kettle": "Kettle manual\nThe kettle warranty lasts two years from the date of purchase.",
    "tea": "Green tea\nGreen tea should be brewed with water at 80 degrees for two minutes.",
    "bike": "Bicycle care\nPump the bicycle tyres to four bar and oil the chain monthly.",
    "guitar": "吉他保养\n吉他琴弦应该每三个月更换一次，并保持琴颈干燥。",
}
QUESTIONS = [
    {
        "id": "q1",
        "question": "How long is the kettle warranty?",
        "gold_doc_ids": ["kettle"],
        "answers": ["two years"],
        "answers_required": [["two years"]],
        "split": "test",
    },
    {"id": "q2", "question": "吉他琴弦多久更换？", "gold_doc_ids": ["guitar"], "split": "test"},
    {
        "id": "q3",
        "question": "What pressure for bicycle tyres?",
        "gold_doc_ids": ["missing"],
        "split": "test",
    },
    {
        "id": "q4",
        "question": "Green tea water temperature?",
        "gold_doc_ids": ["tea"],
        "split": "dev",
    },
]


def run(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = 0
    try:
        main(list(args))
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def tiny_kb(tmp_path: Path, retriever: None, capsys: pytest.CaptureFixture[str]) -> Path:
    folder = tmp_path / "passages"
    folder.mkdir()
    for stem, text in PASSAGES.items():
        (folder / f"{stem}.txt").write_text(text, encoding="utf-8")
    assert run("kb", "create", "tiny", capsys=capsys)[0] == 0
    assert run("kb", "add", "tiny", str(folder), capsys=capsys)[0] == 0
    return write_jsonl(tmp_path / "questions.jsonl", QUESTIONS)


def test_cli_json_end_to_end(tiny_kb: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        "eval",
        "retrieval",
        "tiny",
        str(tiny_kb),
        "--split",
        "test",
        "--top-k",
        "3",
        "--json",
        capsys=capsys,
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["kbs"] == ["tiny"] and result["queries"] == 3 and result["top_k"] == 3
    details = {d["id"]: d for d in result["details"]}
    assert set(details) == {"q1", "q2", "q3"}
    assert details["q1"]["first_gold_rank"] == 1 and details["q2"]["first_gold_rank"] == 1
    assert details["q3"]["first_gold_rank"] is None
    assert details["q1"]["retrieved"][0]["id"] == "kettle"
    assert result["metrics"]["recall@1"] == pytest.approx(0.6667)
    assert result["metrics"]["mrr@10"] == pytest.approx(0.6667)
    assert {"p50", "p95"} == set(result["latency_ms"])


def test_cli_table_limit_and_mode(tiny_kb: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        "eval", "retrieval", "tiny", str(tiny_kb), "--limit", "2", "--mode", "dense", capsys=capsys
    )
    assert code == 0, err
    assert "R@5" in out and "nDCG@10" in out
    assert "100.0" in out  # both of the first two questions find their passage first


def test_cli_errors(tiny_kb: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run("eval", "retrieval", "tiny,nosuch", str(tiny_kb), capsys=capsys)
    assert code == 1 and out == "" and "nosuch" in err and "tiny" in err
    code, _, err = run("eval", "retrieval", "tiny", str(tiny_kb), "--mode", "fuzzy", capsys=capsys)
    flat = " ".join(err.replace("│", " ").split())  # the usage error comes in a box
    assert code == 2 and "'--mode'" in flat and "'fuzzy' is not one of 'hybrid', 'dense'" in flat
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "question": "?"}\n', encoding="utf-8")
    code, _, err = run("eval", "retrieval", "tiny", str(bad), capsys=capsys)
    assert code == 1 and f"{bad}:1" in err and "gold_doc_ids" in err
