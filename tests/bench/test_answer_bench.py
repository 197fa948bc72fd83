"""bench/answer.py's plumbing: both halves through kbchat and the naive pipeline, with fakes."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from kbchat.app import Services
from kbchat.config import load_settings
from kbchat.options import answer_search_options, chat_options
from kbchat.testing.fakes import ScriptedChatModel

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[ModuleType]:
    monkeypatch.syspath_prepend(str(BENCH))
    import answer

    monkeypatch.setattr(answer, "CACHE", tmp_path / "cache")  # never write into the repo
    monkeypatch.setattr(answer, "NAIVE_EMBEDDER", "hash")  # no real model in the fast suite
    yield answer
    sys.modules.pop("answer", None)


def test_both_systems_answer_both_halves(bench: ModuleType, tmp_path: Path) -> None:
    import unanswerable

    corpus = [
        {"id": "k1", "title": "Kettle", "text": "The K3 kettle warranty lasts two years."},
        {"id": "k2", "title": "Kettle lid", "text": "The K3 kettle lid is made of steel."},
        {"id": "t1", "title": "Tea", "text": "Green tea is brewed at eighty degrees."},
    ]
    queries = [
        {
            "id": "q1",
            "question": "How long is the K3 kettle warranty?",
            "answers": ["two years"],
            "gold_doc_ids": ["k1"],
            "split": "dev",
        }
    ]
    built = unanswerable.build_set(
        "hotpotqa_en", corpus, queries, split="dev", limit=1, seed=0, distractors=1
    )
    settings = load_settings(
        home=tmp_path / "home",
        embedder={"backend": "hash"},
        models={"fake": {"backend": "scripted"}},
        default_model="fake",
        chat={"min_score": 0.0, "min_score_cross": 0.0},  # hash scores are not calibrated
    )
    services = Services(settings=settings, library=bench.BenchLibrary(settings))
    model = ScriptedChatModel(["The K3 kettle warranty lasts two years [1]."])
    services.models.add("fake", model)
    options = chat_options(settings, answer_search_options(settings))
    try:
        result = bench.run_set(services, built, ["kbchat", "naive"], options)
    finally:
        services.close()
    for system in ("kbchat", "naive"):
        summary = result[system]
        assert (summary["answerable"], summary["unanswerable"]) == (1, 1)
        assert summary["accuracy"] == 1.0 and summary["false_refusals"] == 0.0
        assert summary["median_ttft_s"] is not None
    # The scripted model always answers "two years": the naive pipeline passes that on;
    # kbchat declines it over the unanswerable half, whose passages never say it.
    assert result["naive"]["declined_unanswerable"] == 0.0
    assert result["kbchat"]["declined_unanswerable"] == 1.0
    assert result["naive"]["citation_hit_rate"] is None
    assert result["kb_passages"] == {"answerable": 3, "unanswerable": 2}
    naive_prompts = [m[-1].content for m in model.received if "I don't know" in m[-1].content]
    assert len(naive_prompts) == 2  # one per half; the other calls are kbchat's
    assert "[1] " in naive_prompts[0] and "K3 kettle" in naive_prompts[0]
    assert (tmp_path / "cache" / "answer-passages").is_dir()


def test_naive_results_are_taken_only_from_a_run_of_the_same_questions(
    bench: ModuleType, tmp_path: Path
) -> None:
    earlier = tmp_path / "earlier.json"
    run = {"split": "test", "limit_per_half": 12, "seed": 7, "distractors": 60}
    naive = {"accuracy": 0.5, "rows": []}
    run |= {"time": "T", "code": {"commit": "abc"}, "sets": {"cmrc2018_zh": {"naive": naive}}}
    earlier.write_text(json.dumps(run), encoding="utf-8")
    args = argparse.Namespace(naive_from=earlier, split="test", limit=12, seed=7, distractors=60)
    taken = bench.earlier_naive(args, "cmrc2018_zh")
    assert taken["accuracy"] == 0.5 and taken["from_run"]["code"] == {"commit": "abc"}
    with pytest.raises(SystemExit, match="limit_per_half"):
        bench.earlier_naive(argparse.Namespace(**{**vars(args), "limit": 30}), "cmrc2018_zh")
