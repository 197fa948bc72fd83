"""The answerability gate on retrieval alone (no model): how many answerable questions it would
decline (false refusals) and how many unanswerable ones, per threshold of ``chat.min_evidence``.

Usage::

    python bench/answerability.py --split dev --limit 10 --sets cmrc2018_zh,hotpotqa_en

Question sets and knowledge bases are those of ``bench/answer.py`` (built and cached the same
way, with kbchat's embedder and chunking). Each question is searched as ``kbchat ask`` searches
it; a question counts as declined at a threshold when the checks before the model decline it:
an item no passage holds (``missing_items``), a weak best passage (``chat.min_score``), or a best
place holding less than the threshold of its key terms (``answerable.evidence``). Cheap enough to
sweep thresholds on every dev question; the model's part (``chat.min_coverage``) needs
``bench/answer.py``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from answer import half_kb, questions_of
from retrieval import CACHE, BenchLibrary, code_version
from unanswerable import load_sets

from kbchat.app import Services
from kbchat.chat.answerable import evidence
from kbchat.chat.grounding import missing_items
from kbchat.chat.rag import named_hits
from kbchat.config import load_settings
from kbchat.options import answer_search_options
from kbchat.retrieve.search import Retrieval, retrieve
from kbchat.runtime import configure_process
from kbchat.text import detect_language

THRESHOLDS = (0.0, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


def signals(
    question: str,
    find: Callable[[str], Retrieval],
    min_score: float,
    min_score_cross: float,
) -> dict[str, Any]:
    """What the checks before the model see for one question (with the search for names the
    hits lack, as ``kbchat.chat.rag`` does)."""
    hits = find(question).hits
    if not hits:
        return {"declined_before": True, "evidence": 0.0}
    language = detect_language(question)
    best = hits[0]
    same_best = detect_language(best.text[:300]) == language
    weak = best.score < (min_score if same_best else min_score_cross)
    missing = missing_items(question, [hit.text for hit in hits])
    named = named_hits(find, missing, hits) if missing else []
    if named:
        hits = [hits[0], *named, *hits[1:]]
        missing = missing_items(question, [hit.text for hit in hits])
    same = [hit.text for hit in hits if detect_language(hit.text[:300]) == language]
    share = evidence(question, same).share if same else 1.0
    return {
        "declined_before": weak or bool(missing),
        "evidence": round(share, 3),
        "best_score": round(best.score, 3),
        "missing": missing,
        "named_hits": len(named),
    }


def main() -> None:
    configure_process()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", default="dev", choices=["dev", "test"])
    parser.add_argument("--limit", type=int, default=10, help="questions per half and set")
    parser.add_argument("--sets", default="cmrc2018_zh,hotpotqa_en", help="comma-separated")
    parser.add_argument("--distractors", type=int, default=60)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or Path(__file__).parent / "results" / f"answerability-{args.split}.json"
    settings = load_settings(home=CACHE / "home")
    services = Services(settings=settings, library=BenchLibrary(settings))
    search = answer_search_options(settings)
    chat = settings.chat
    chunking = (settings.ingest.chunk_size, settings.ingest.chunk_overlap)
    results: dict[str, Any] = {
        "benchmark": "answerability gate on retrieval (no model)",
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "split": args.split,
        "limit_per_half": args.limit,
        "distractors": args.distractors,
        "top_k": search.top_k,
        "code": code_version(),
        "sets": {},
    }
    try:
        for built in load_sets(
            args.sets.split(","),
            split=args.split,
            limit=args.limit,
            seed=args.seed,
            distractors=args.distractors,
        ):
            rows: list[dict[str, Any]] = []
            for half in ("answerable", "unanswerable"):
                kb = half_kb(services.library, built, half, settings.embedder.backend, chunking)
                reranker = services.reranker()

                def find(query: str, kb: Any = kb, reranker: Any = reranker) -> Retrieval:
                    return retrieve([kb], query, search, reranker=reranker)

                for query in questions_of(getattr(built, half)):
                    row = signals(query.question, find, chat.min_score, chat.min_score_cross)
                    rows.append({"half": half, "id": query.id, "question": query.question} | row)
            results["sets"][built.name] = {"sweep": sweep(rows), "rows": rows}
    finally:
        services.close()
    out.write_text(json.dumps(results, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    for name, result in results["sets"].items():
        for line in result["sweep"]:
            print(name, json.dumps(line))


def sweep(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """False refusals and unanswerable questions declined before the model, per threshold."""
    lines = []
    for threshold in THRESHOLDS:
        line: dict[str, Any] = {"min_evidence": threshold}
        for half, key in (("answerable", "false_refusals"), ("unanswerable", "declined")):
            part = [r for r in rows if r["half"] == half]
            declined = [r["declined_before"] or r["evidence"] < threshold for r in part]
            line[key] = round(sum(declined) / len(part), 3) if part else None
        lines.append(line)
    return lines


if __name__ == "__main__":
    main()
