"""Summary benchmark: time for a 10-page document, and key-fact coverage, per strategy.

Usage: python bench/summarize.py [--docs 10] [--strategies extract,map-reduce] [--out PATH]

- Time: a ~10-page English document (hotpot paragraphs, ~6,500 tokens) summarised with
  the embedded model, per strategy (targets: extract <= 20 s, map-reduce <= 2 min).
- Coverage: documents of ``--articles`` cmrc2018 articles each (one titled section per
  article); a document's key facts are the answers of one question per article, and its
  coverage is the share of those answers found in the summary.
All summaries go through the real path (knowledge base, stored chunks, ``summarize_file``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from kbchat.app import build
from kbchat.chat.summaries import SummaryStore, summarize_file
from kbchat.chat.summarize import STRATEGIES, Summary
from kbchat.config import load_settings
from kbchat.eval.answers import answer_is_correct
from kbchat.options import summary_options
from kbchat.runtime import configure_process

EVAL = Path(__file__).resolve().parents[2] / "shared" / "eval" / "dev"
PAGE_WORDS = 500


def rows(name: str, file: str) -> list[dict[str, Any]]:
    with (EVAL / name / file).open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def ten_pages(rng: random.Random) -> str:
    """About ten pages (5,000 words) of hotpot paragraphs, each under its title."""
    corpus = rows("hotpotqa_en", "corpus.jsonl")
    rng.shuffle(corpus)
    parts, words = [], 0
    for row in corpus:
        if words >= 10 * PAGE_WORDS:
            break
        parts.append(f"{row['title']}\n{row['text']}")
        words += len(row["text"].split())
    return "\n\n".join(parts)


def fact_documents(count: int, articles: int, rng: random.Random) -> list[dict[str, Any]]:
    """``count`` documents of ``articles`` cmrc2018 articles, with one key fact per article."""
    corpus = {row["id"]: row for row in rows("cmrc2018_zh", "corpus.jsonl")}
    by_doc: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for query in rows("cmrc2018_zh", "queries.jsonl"):
        for doc in query["gold_doc_ids"]:
            if doc in corpus:
                by_doc[doc].append(query)
    ids = sorted(by_doc)
    rng.shuffle(ids)
    documents = []
    for n in range(count):
        chosen = ids[n * articles : (n + 1) * articles]
        text = "\n\n".join(f"{corpus[d]['title']}\n{corpus[d]['text']}" for d in chosen)
        facts = [rng.choice(by_doc[d])["answers_required"] for d in chosen]
        documents.append({"name": f"doc{n:02d}.txt", "text": text, "facts": facts})
    return documents


def run_summary(
    services: Any, kb: Any, file: str, strategy: str, store: SummaryStore
) -> tuple[Summary, float]:
    model = services.models.get(None)
    options = summary_options(services.settings, strategy=strategy)
    started = time.perf_counter()
    final = list(summarize_file(kb, file, model, store, options=options, refresh=True))[-1]
    assert isinstance(final, Summary)
    return final, time.perf_counter() - started


def save(results: dict[str, Any], out: Path) -> None:
    """Write what is measured so far (a long run stopped early keeps its numbers)."""
    results["load_average"] = [round(x, 1) for x in os.getloadavg()]  # the machine is shared
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n")


def main() -> None:
    configure_process()  # what the CLI and server set: OpenMP policy, FAISS threads
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--docs", type=int, default=10)
    parser.add_argument("--articles", type=int, default=6)
    parser.add_argument("--strategies", default="extract,map-reduce")
    parser.add_argument("--skip-time", action="store_true")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("bench/results/summarize.json"))
    args = parser.parse_args()
    strategies = args.strategies.split(",")
    unknown = set(strategies) - set(STRATEGIES)
    if unknown:
        parser.error(f"unknown strategies: {', '.join(sorted(unknown))}")
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="kbchat-summarize-"))
    services = build(load_settings(home=work / "home"))
    results: dict[str, Any] = {
        "benchmark": "summarize",
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "model": services.settings.default_model,
        "embedder": services.settings.embedder.backend,
        "ten_pages": {},
        "coverage": {},
    }
    try:
        folder = work / "docs"
        folder.mkdir()
        documents = fact_documents(args.docs, args.articles, rng)
        for doc in documents:
            (folder / doc["name"]).write_text(doc["text"], encoding="utf-8")
        if not args.skip_time:
            (folder / "ten-pages.txt").write_text(ten_pages(rng), encoding="utf-8")
        kb = services.library.ensure("bench")
        kb.add([folder])
        store = SummaryStore(services.library.catalog.engine)
        model = services.models.get(None)
        if not args.skip_time:
            text = (folder / "ten-pages.txt").read_text(encoding="utf-8")
            results["ten_pages"]["tokens"] = model.count_tokens(text)
            results["ten_pages"]["words"] = len(text.split())
            for strategy in strategies:
                summary, seconds = run_summary(services, kb, "ten-pages.txt", strategy, store)
                results["ten_pages"][strategy] = {
                    "seconds": round(seconds, 1),
                    "estimated_s": summary.estimated_s,
                    "steps": summary.steps,
                    "summary": summary.text,
                }
                print(json.dumps({"ten_pages": strategy, "seconds": round(seconds, 1)}), flush=True)
                save(results, args.out)
        for strategy in strategies if documents else []:
            scores, times = [], []
            for doc in documents:
                summary, seconds = run_summary(services, kb, doc["name"], strategy, store)
                found = [answer_is_correct(summary.text, [f[0]]) for f in doc["facts"]]
                scores.append(sum(found) / len(found))
                times.append(seconds)
                print(
                    json.dumps(
                        {"doc": doc["name"], "strategy": strategy, "coverage": scores[-1]},
                        ensure_ascii=False,
                    ),
                    flush=True,
                )
            results["coverage"][strategy] = {
                "documents": len(documents),
                "facts_per_document": args.articles,
                "mean_coverage": round(100 * statistics.mean(scores), 1),
                "median_seconds": round(statistics.median(times), 1),
            }
            save(results, args.out)
    finally:
        services.close()
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({k: v for k, v in results.items() if k != "ten_pages"}, indent=2))


if __name__ == "__main__":
    main()
