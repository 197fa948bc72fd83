"""Does searching kept summaries beside chunks hurt retrieval of ordinary questions?

Usage: python bench/summary_search.py [--questions 100] [--pool 300]
       [--summaries sentences|llm] [--llm-files 40] [--out PATH]

Per set (cmrc2018_zh with titles, hotpotqa_en; split dev) a knowledge base is built the way
bench/retrieval.py builds its pools: every gold passage of ``--questions`` seeded questions
plus seeded other passages up to ``--pool``, each passage a file ``<id>.txt`` (title on
the first line), default settings (embedder, chunking). Every file gets a kept summary:

- ``llm``: the real path, ``summarize_file`` with the embedded model and the ``extract``
  strategy (at most ``--llm-files`` files: a summary takes 10-60 s on two shared cores;
  the other files get none);
- ``sentences``: a stand-in made without the model, the three most central sentences of the
  file as the ``extract`` strategy picks them before its model pass.

The same questions are then searched with default options, without and with the summaries
(``chat.summary_search.with_summaries``), and scored by passage (file stem) as
``kbchat eval`` does: recall@1/5/10, MRR@10, nDCG@10, and how many hits were summaries.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from kbchat.app import build
from kbchat.chat.summaries import SummaryStore, file_chunks, summarize_file
from kbchat.chat.summarize import Summary
from kbchat.chat.summary_extract import central_sentences, document_sentences
from kbchat.chat.summary_search import with_summaries
from kbchat.config import load_settings
from kbchat.embed.base import embed_texts
from kbchat.eval.retrieval import EvalQuery, evaluate_retrieval, load_queries
from kbchat.kb.knowledge_base import KnowledgeBase
from kbchat.options import search_options, summary_options
from kbchat.retrieve.search import retrieve
from kbchat.runtime import configure_process
from kbchat.types import Hit

EVAL = Path(__file__).resolve().parents[2] / "shared" / "eval" / "dev"
SETS = {"cmrc2018_zh": "cmrc2018_zh", "hotpotqa_en": "hotpotqa_en"}


def corpus(name: str) -> dict[str, dict[str, Any]]:
    with (EVAL / name / "corpus.jsonl").open(encoding="utf-8") as handle:
        return {row["id"]: row for row in map(json.loads, handle)}


def build_kb(
    services: Any, name: str, queries: list[EvalQuery], pool: int, rng: random.Random, work: Path
) -> KnowledgeBase:
    passages = corpus(name)
    chosen = {g for q in queries for g in q.gold_ids if g in passages}
    others = sorted(set(passages) - chosen)
    rng.shuffle(others)
    chosen |= set(others[: max(0, pool - len(chosen))])
    folder = work / name
    folder.mkdir(parents=True)
    for pid in sorted(chosen):
        row = passages[pid]
        (folder / f"{pid}.txt").write_text(f"{row['title']}\n{row['text']}", encoding="utf-8")
    kb = services.library.ensure(name.replace("_", "-"))
    kb.add([folder])
    return kb


def make_summaries(
    services: Any, kb: KnowledgeBase, how: str, llm_files: int, rng: random.Random
) -> dict[str, Any]:
    store = SummaryStore(kb.catalog.engine)
    names = [r.name for r in kb.files() if r.status == "indexed"]
    started = time.perf_counter()
    if how == "llm":
        model = services.models.get(None)
        options = summary_options(services.settings, strategy="extract")
        picked = rng.sample(names, min(llm_files, len(names)))
        for n, name in enumerate(picked, 1):
            list(summarize_file(kb, name, model, store, options=options))
            print(json.dumps({"summarised": name, "n": n, "of": len(picked)}), flush=True)
        names = picked
    else:
        for name in names:
            sentences = document_sentences(file_chunks(kb, name))
            if not sentences:
                continue
            vectors = embed_texts(kb.embedder, sentences, batch_size=32)
            picked = central_sentences(
                sentences, vectors, limit=3, budget=200, count=lambda s: max(1, len(s) // 2)
            )
            text = " ".join(picked)
            record = kb.catalog.get_file(kb.record.id, name)
            assert record is not None
            store.put(kb.record.id, record, Summary(text, "extract", "en", 0, 0.0), "none")
    return {"files": len(names), "seconds": round(time.perf_counter() - started, 1)}


def evaluate(services: Any, kb: KnowledgeBase, queries: list[EvalQuery]) -> dict[str, Any]:
    options = search_options(services.settings, top_k=10)
    summary_hits = 0

    def plain(question: str) -> list[Hit]:
        return retrieve([kb], question, options).hits

    def summaries(question: str) -> list[Hit]:
        nonlocal summary_hits
        found = with_summaries([kb], question, options, retrieve([kb], question, options))
        summary_hits += sum(1 for h in found.hits if h.extra.get("summary"))
        return found.hits

    results = {}
    for label, search_fn in (("chunks", plain), ("chunks+summaries", summaries)):
        report = evaluate_retrieval(search_fn, queries, top_k=10)
        results[label] = {
            "metrics": {k: round(v, 4) for k, v in report.metrics.items()},
            "latency_p50_ms": round(report.latency_p50_ms, 1),
        }
        print(json.dumps({"kb": kb.name, label: results[label]}), flush=True)
    results["chunks+summaries"]["summary_hits_per_question"] = round(
        summary_hits / max(1, len(queries)), 2
    )
    return results


def main() -> None:
    configure_process()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--questions", type=int, default=100)
    parser.add_argument("--pool", type=int, default=300)
    parser.add_argument("--summaries", choices=("sentences", "llm"), default="sentences")
    parser.add_argument("--llm-files", type=int, default=40)
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench/results/summary_search.json"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kbchat-summary-search-"))
    services = build(load_settings(home=work / "home"))
    results: dict[str, Any] = {
        "benchmark": "summary_search",
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "embedder": services.settings.embedder.backend,
        "summaries": args.summaries,
        "questions": args.questions,
        "pool": args.pool,
        "metrics": "fractions in [0, 1], passages = file stems, top_k 10",
        "sets": {},
    }
    try:
        for name in args.sets.split(","):
            rng = random.Random(args.seed)
            queries = load_queries(EVAL / SETS[name] / "queries.jsonl", split="dev")
            rng.shuffle(queries)
            queries = [q for q in queries if q.gold_ids][: args.questions]
            kb = build_kb(services, name, queries, args.pool, rng, work)
            made = make_summaries(services, kb, args.summaries, args.llm_files, rng)
            results["sets"][name] = {
                "kb_files": len(kb.files()),
                "summaries": made,
                **evaluate(services, kb, queries),
            }
            results["load_average"] = [round(x, 1) for x in os.getloadavg()]
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n")
    finally:
        services.close()
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
