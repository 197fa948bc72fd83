"""The bench set builder (bench/unanswerable.py) on a tiny corpus written here."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from kbchat.eval.retrieval import load_queries

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def builder() -> Iterator[ModuleType]:
    sys.path.insert(0, str(BENCH))
    try:
        import unanswerable

        yield unanswerable
    finally:
        sys.path.remove(str(BENCH))


def _q(qid: str, question: str, answers: list[str], gold: list[str], **more: Any) -> dict[str, Any]:
    return {
        "id": qid,
        "question": question,
        "answers": answers,
        "answers_required": [answers],
        "gold_doc_ids": gold,
        "split": "dev",
        **more,
    }


# A hotpotqa-like corpus: each question's passages sit together, gold in the middle.
HOTPOT_CORPUS = [
    {"id": "h0", "title": "Kettle A", "text": "Kettle A is made of steel."},
    {"id": "h1", "title": "Kettle B", "text": "Kettle B boils water fast."},
    {"id": "h2", "title": "Kettle C", "text": "Kettle C has a two year warranty."},
    {"id": "h3", "title": "Kettle D", "text": "Kettle D also promises a two year warranty."},
    {"id": "h4", "title": "Kettle E", "text": "Kettle E is blue."},
    {"id": "h5", "title": "Teapot", "text": "The teapot holds one litre."},
    {"id": "h6", "title": "Tea", "text": "Green tea is brewed at 80 degrees."},
    {"id": "h7", "title": "Cups", "text": "Cups come in sets of six."},
    {"id": "h8", "title": "Kettle warranty", "text": "Warranty claims need a receipt."},
]
HOTPOT_QUERIES = [
    _q("q1", "How long is the Kettle C warranty?", ["two year"], ["h2"]),
    _q("q2", "How hot for green tea?", ["80 degrees"], ["h6"]),
    _q("q3", "Is the teapot bigger than a cup?", ["yes"], ["h5"]),
    _q("q4", "test question", ["x"], ["h0"], split="test"),
]


def test_hotpotqa_unanswerable_kb_has_the_topic_but_no_answer(builder: ModuleType) -> None:
    built = builder.build_set(
        "hotpotqa_en",
        HOTPOT_CORPUS,
        HOTPOT_QUERIES,
        split="dev",
        limit=5,
        seed=1,
        distractors=2,
    )
    # the yes/no question cannot be made unanswerable by removing passages that hold "yes"
    assert {q["id"] for q in built.unanswerable.questions} == {"q1", "q2"}
    assert {q["id"] for q in built.answerable.questions} == {"q1", "q2", "q3"}
    kb = built.unanswerable.passages
    assert "h2" not in kb and "h6" not in kb  # gold withheld
    assert "h3" not in kb  # a neighbour that holds the answer string
    assert {"h1", "h4", "h5", "h7"} <= set(kb)  # the topic's other passages
    for row in built.unanswerable.questions:
        assert row["answerable"] is False and row["gold_doc_ids"] == []
        assert not any(p.text.lower().count(a.lower()) for p in kb.values() for a in row["answers"])
    assert {"h2", "h6", "h5"} <= set(built.answerable.passages)  # gold of the answerable half


def test_cmrc_unanswerable_keeps_the_rest_of_the_gold_paragraph(builder: ModuleType) -> None:
    kettle = (
        "K3水壶由不锈钢制成，外形简洁，容量为一点七升。它的保修期为两年。"
        "购买时需要保留发票，以便日后维修使用。水壶底座可以旋转三百六十度。"
    )
    corpus = [
        {"id": "c1", "title": "水壶", "text": kettle},
        {"id": "c2", "title": "绿茶", "text": "绿茶适合用八十度的水冲泡。"},
        {"id": "c3", "title": "杯子", "text": "这套杯子的保修期为两年。"},
        {"id": "c4", "title": "茶壶", "text": "茶壶由陶瓷制成。"},
        {"id": "c5", "title": "家电", "text": "家电评测：K3水壶的保修两年，物有所值。"},
    ]
    queries = [
        _q("z1", "K3水壶的保修期多长？", ["两年"], ["c1"]),
        _q("z2", "水温？", ["八十度"], ["c2"]),
    ]
    built = builder.build_set(
        "cmrc2018_zh", corpus, queries, split="dev", limit=2, seed=3, distractors=5
    )
    # z2's paragraph has nothing left once its answer sentence goes: no topic, not chosen
    assert [q["id"] for q in built.unanswerable.questions] == ["z1"]
    kb = built.unanswerable.passages
    assert "c1" not in kb  # gold withheld
    assert "c5" not in kb  # another paragraph with the answer string beside the gold's title
    assert "c3" in kb  # "两年" for another item: the neighbour's-value trap, not an answer
    rest = kb["c1-rest"]
    assert rest.title == "水壶" and "两年" not in rest.text
    assert "不锈钢" in rest.text and "三百六十度" in rest.text
    assert {"c2", "c4"} <= set(kb)  # distractors
    assert set(built.answerable.passages) >= {"c1", "c2"}


def test_rgb_halves_and_a_negative_holding_the_answer(builder: ModuleType) -> None:
    corpus = [{"id": f"p{i}", "title": "", "text": f"新闻{i}：比赛还在进行。"} for i in range(6)]
    corpus[1]["text"] = "冠军是红队。"
    corpus[3]["text"] = "有人说冠军是红队。"  # a "negative" that answers: dropped
    queries = [
        _q("r1", "谁是冠军？", ["红队"], ["p1"], hard_negative_ids=["p2", "p3", "p4"]),
    ]
    built = builder.build_set(
        "rgb_zh", corpus, queries, split="dev", limit=3, seed=0, distractors=9
    )
    assert set(built.answerable.passages) == {"p1", "p2", "p3", "p4"}
    assert set(built.unanswerable.passages) == {"p2", "p4"}  # no random distractors for rgb


def test_selection_is_seeded_and_nested(builder: ModuleType) -> None:
    queries = [_q(f"q{i}", f"Kettle {i}?", [f"answer{i}"], [f"h{i % 9}"]) for i in range(9)]

    def ids(limit: int, seed: int) -> list[str]:
        built = builder.build_set(
            "hotpotqa_en",
            HOTPOT_CORPUS,
            queries,
            split="dev",
            limit=limit,
            seed=seed,
            distractors=1,
        )
        return [q["id"] for q in built.answerable.questions]

    assert ids(4, 5) == ids(4, 5)
    assert ids(6, 5)[:4] == ids(4, 5)
    assert ids(9, 5) != ids(9, 6)  # another seed, another order


def test_written_halves_load_as_question_sets(builder: ModuleType, tmp_path: Path) -> None:
    built = builder.build_set(
        "hotpotqa_en", HOTPOT_CORPUS, HOTPOT_QUERIES, split="dev", limit=5, seed=1, distractors=2
    )
    built.write(tmp_path)
    folder = tmp_path / "hotpotqa_en" / "unanswerable"
    questions = load_queries(folder / "questions.jsonl")
    assert questions and not any(q.answerable for q in questions)
    assert all(q.extra["withheld_doc_ids"] for q in questions)
    files = sorted(p.name for p in (folder / "passages").iterdir())
    assert files == sorted(f"{pid}.txt" for pid in built.unanswerable.passages)
    text = (folder / "passages" / "h1.txt").read_text(encoding="utf-8")
    assert text == "Kettle B\nKettle B boils water fast.\n"
    answerable = load_queries(tmp_path / "hotpotqa_en" / "answerable" / "questions.jsonl")
    assert all(q.answerable and q.gold_ids for q in answerable)
    assert json.loads((folder / "questions.jsonl").read_text().splitlines()[0])["split"] == "dev"


def test_bad_limit_is_refused(builder: ModuleType) -> None:
    with pytest.raises(ValueError, match="limit must be > 0"):
        builder.build_set(
            "rgb_zh", HOTPOT_CORPUS, HOTPOT_QUERIES, split="dev", limit=0, seed=0, distractors=0
        )
