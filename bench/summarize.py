"""Summary benchmark: time for a 10-page document, and key-fact coverage, per strategy.

Usage: python bench/summarize.py [--ten-pages zh,en] [--docs 20] [--strategies extract,map-reduce]
       [--skip-time] [--skip-coverage] [--out PATH]

- Time (targets with the embedded 0.5B model: extract <= 20 s, map-reduce <= 2 min): one
  coherent document per language from ../shared/eval/dev/chatchat_samples. A page is
  ~700 of the model's tokens (~500 English words, ~1,250 Chinese characters): ``zh`` is
  the first 10 pages of a Chinese book on prompt engineering (test.txt, cut at the chapter
  heading after 7,000 tokens), ``en`` an English paper as its 8-page PDF (langchain.pdf,
  ~3,700 words, ~5,700 tokens), read by the PDF loader. Every model call is recorded
  (prompt tokens and seconds to the first token, tokens written and seconds), with the
  load average before and after and the CPU seconds the process used: the machine may be
  shared, and the numbers say whether the model or the machine was slow.
- Coverage: ``--docs`` documents (half Chinese, half English) whose key facts are the
  answers of their questions (short ones: a name, number, date or term; not yes/no): a
  Chinese one is ``--articles`` cmrc2018 articles (each under its title) with the answers
  of all their questions; an English one the gold paragraphs (each under its title) of
  ``--questions`` hotpot questions whose answer is in them, with those answers. Coverage
  is the share of a document's facts found in its summary (as ``answer_is_correct``).
All summaries go through the real path (knowledge base, stored chunks, ``summarize_file``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path
from typing import Any

from kbchat.app import build
from kbchat.chat.summaries import SummaryStore, file_chunks, summarize_file
from kbchat.chat.summarize import STRATEGIES, Summary, choose_strategy, estimate_seconds
from kbchat.chat.summary_speed import speeds_of
from kbchat.config import load_settings
from kbchat.eval.answers import answer_is_correct
from kbchat.llm.base import complete
from kbchat.options import summary_options
from kbchat.runtime import configure_process
from kbchat.types import Message

EVAL = Path(__file__).resolve().parents[2] / "shared" / "eval" / "dev"
SAMPLES = EVAL / "chatchat_samples" / "kb_samples_content" / "test_files"
HAN = re.compile(r"[\u4e00-\u9fff]")
PAGE_TOKENS = 700
"""A page: ~500 English words, or ~1,250 Chinese characters, in the model's tokens."""


def rows(name: str, file: str) -> list[dict[str, Any]]:
    with (EVAL / name / file).open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def ten_pages_zh(folder: Path, count: Any) -> str:
    """The Chinese book's first 10 pages, cut at the chapter heading that follows them."""
    text = (SAMPLES / "test.txt").read_text(encoding="utf-8")
    for heading in re.finditer(r"^## ", text, re.MULTILINE):
        if count(text[: heading.start()]) >= 10 * PAGE_TOKENS:
            text = text[: heading.start()]
            break
    (folder / "ten-pages-zh.txt").write_text(text, encoding="utf-8")
    return "ten-pages-zh.txt"


def ten_pages_en(folder: Path, count: Any) -> str:
    """The English paper as its PDF (8 pages, ~5,700 tokens: about 8 pages of 700)."""
    shutil.copy(SAMPLES / "langchain.pdf", folder / "ten-pages-en.pdf")
    return "ten-pages-en.pdf"


def key_fact(required: list[list[str]]) -> list[list[str]] | None:
    """A question's answer as a key fact: its short forms (a name, number, date or term:
    at most 16 characters or 4 words), None if it has none or is a yes/no."""
    fact = [
        [a for a in need if len(a) <= 16 or (not HAN.search(a) and len(a.split()) <= 4)]
        for need in required
    ]
    if not all(fact) or any(a.lower() in ("yes", "no") for need in fact for a in need):
        return None
    return fact


def cmrc_documents(count: int, articles: int, rng: random.Random) -> list[dict[str, Any]]:
    """``count`` documents of ``articles`` cmrc2018 articles; facts: all their answers."""
    corpus = {row["id"]: row for row in rows("cmrc2018_zh", "corpus.jsonl")}
    by_doc: dict[str, list[list[list[str]]]] = defaultdict(list)
    for query in rows("cmrc2018_zh", "queries.jsonl"):
        for doc in query["gold_doc_ids"]:
            fact = key_fact(query["answers_required"])
            if doc in corpus and fact and fact not in by_doc[doc]:
                by_doc[doc].append(fact)
    ids = sorted(by_doc)
    rng.shuffle(ids)
    documents = []
    for n in range(count):
        chosen = ids[n * articles : (n + 1) * articles]
        text = "\n\n".join(f"{corpus[d]['title']}\n\n{corpus[d]['text']}" for d in chosen)
        facts = [fact for d in chosen for fact in by_doc[d]]
        documents.append({"name": f"cmrc{n:02d}.txt", "text": text, "facts": facts})
    return documents


def hotpot_documents(count: int, questions: int, rng: random.Random) -> list[dict[str, Any]]:
    """``count`` documents of the gold paragraphs of ``questions`` hotpot questions whose
    answer is in them; facts: those answers."""
    corpus = {row["id"]: row for row in rows("hotpotqa_en", "corpus.jsonl")}
    usable = []
    for query in rows("hotpotqa_en", "queries.jsonl"):
        gold = [corpus[d] for d in query["gold_doc_ids"] if d in corpus]
        text = " ".join(row["text"] for row in gold).lower()
        fact = key_fact(query["answers_required"])
        if gold and fact and all(any(a.lower() in text for a in need) for need in fact):
            usable.append((gold, fact))
    rng.shuffle(usable)
    documents = []
    for n in range(count):
        chosen = usable[n * questions : (n + 1) * questions]
        paragraphs = {row["id"]: row for gold, _ in chosen for row in gold}
        text = "\n\n".join(f"{row['title']}\n\n{row['text']}" for row in paragraphs.values())
        facts = [answers for _, answers in chosen]
        documents.append({"name": f"hotpot{n:02d}.txt", "text": text, "facts": facts})
    return documents


def run_summary(services: Any, kb: Any, file: str, strategy: str, store: SummaryStore) -> Summary:
    model = services.models.get(None)
    options = summary_options(services.settings, strategy=strategy)  # type: ignore[arg-type]
    final = list(summarize_file(kb, file, model, store, options=options, refresh=True))[-1]
    assert isinstance(final, Summary)
    return final


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def timed(services: Any, kb: Any, file: str, strategy: str, store: SummaryStore) -> dict[str, Any]:
    """One 10-page summary with every step's timing and the machine's load around it."""
    before = load()
    started, cpu = time.perf_counter(), time.process_time()
    summary = run_summary(services, kb, file, strategy, store)
    seconds = time.perf_counter() - started
    return {
        "seconds": round(seconds, 1),
        "cpu_s": round(time.process_time() - cpu, 1),
        "load_before": before,
        "load_after": load(),
        "estimated_s": summary.estimated_s,
        "model_calls": summary.steps,
        "prompt_tokens": summary.usage.prompt_tokens,
        "completion_tokens": summary.usage.completion_tokens,
        "prompt_s": round(sum(t.prompt_s for t in summary.timings if t.stage != "embed"), 1),
        "generate_s": round(sum(t.generate_s for t in summary.timings), 1),
        "embed_s": round(sum(t.prompt_s for t in summary.timings if t.stage == "embed"), 1),
        "steps": [asdict(t) for t in summary.timings],
        "finish_reason": summary.finish_reason,
        "summary": summary.text,
    }


def auto_choice(services: Any, kb: Any, file: str) -> dict[str, Any]:
    """What ``auto`` picks for ``file`` at the speeds measured so far, and the estimates."""
    model = services.models.get(None)
    options = summary_options(services.settings)
    texts = file_chunks(kb, file)
    speeds = speeds_of(model)
    return {
        "strategy": choose_strategy(model, texts, options, has_embedder=True),
        "estimated_s": {
            s: round(estimate_seconds(model, texts, s, options), 1)  # type: ignore[arg-type]
            for s in ("extract", "map-reduce")
        },
        "measured_prompt_tps": round(speeds.prompt_tps(options.prompt_tps), 1),
        "measured_generate_tps": round(speeds.generate_tps(options.generate_tps), 1),
    }


def save(results: dict[str, Any], out: Path) -> None:
    """Write what is measured so far (a long run stopped early keeps its numbers)."""
    results["load_average"] = load()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n")


def coverage(
    services: Any,
    kb: Any,
    documents: list[dict[str, Any]],
    strategies: list[str],
    store: SummaryStore,
    results: dict[str, Any],
    out: Path,
) -> None:
    """Each document summarised by each strategy in turn (a run stopped early has the
    same documents for every strategy); the means kept up to date."""
    per_doc = results["coverage_documents"]
    for doc in documents:
        row = per_doc.setdefault(doc["name"], {"facts": len(doc["facts"]), "tokens": doc["tokens"]})
        for strategy in strategies:
            before = load()
            started = time.perf_counter()
            summary = run_summary(services, kb, doc["name"], strategy, store)
            found = [answer_is_correct(summary.text, fact) for fact in doc["facts"]]
            row[strategy] = {
                "coverage": round(sum(found) / len(found), 3),
                "seconds": round(time.perf_counter() - started, 1),
                "load": before,
                "summary": summary.text,
            }
            print(
                json.dumps({"doc": doc["name"], "strategy": strategy, **row[strategy]}), flush=True
            )
        for strategy in strategies:
            results["coverage"][strategy] = coverage_means(per_doc, strategy)
        save(results, out)


def coverage_means(per_doc: dict[str, Any], strategy: str) -> dict[str, Any]:
    done = {name: row[strategy] for name, row in per_doc.items() if strategy in row}
    means = {
        "documents": len(done),
        "mean_coverage": round(100 * statistics.mean(r["coverage"] for r in done.values()), 1),
        "median_seconds": round(statistics.median(r["seconds"] for r in done.values()), 1),
    }
    for prefix in ("cmrc", "hotpot"):
        scores = [r["coverage"] for name, r in done.items() if name.startswith(prefix)]
        if scores:
            means[f"mean_coverage_{prefix}"] = round(100 * statistics.mean(scores), 1)
            means[f"documents_{prefix}"] = len(scores)
    return means


def main() -> None:
    configure_process()  # what the CLI and server set: OpenMP policy, FAISS threads
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ten-pages", default="zh,en", help="Languages of the timed document.")
    parser.add_argument("--docs", type=int, default=20)
    parser.add_argument("--articles", type=int, default=3, help="cmrc articles a document.")
    parser.add_argument("--questions", type=int, default=5, help="hotpot questions a document.")
    parser.add_argument("--strategies", default="extract,map-reduce")
    parser.add_argument("--skip-time", action="store_true")
    parser.add_argument("--skip-coverage", action="store_true")
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
        "command": "python bench/summarize.py " + " ".join(sys.argv[1:]),
        "model": services.settings.default_model,
        "embedder": services.settings.embedder.backend,
        "cpus": os.cpu_count(),
        "ten_pages": {},
        "coverage": {},
        "coverage_documents": {},
    }
    try:
        folder = work / "docs"
        folder.mkdir()
        documents: list[dict[str, Any]] = []
        if not args.skip_coverage:
            half = args.docs // 2
            chinese = cmrc_documents(args.docs - half, args.articles, rng)
            english = hotpot_documents(half, args.questions, rng)
            documents = [d for pair in itertools.zip_longest(chinese, english) for d in pair if d]
        for doc in documents:
            (folder / doc["name"]).write_text(doc["text"], encoding="utf-8")
        makers = {"zh": ten_pages_zh, "en": ten_pages_en}
        model = services.models.get(None)
        timed_files = (
            {}
            if args.skip_time
            else {
                lang: makers[lang](folder, model.count_tokens) for lang in args.ten_pages.split(",")
            }
        )
        kb = services.library.ensure("bench")
        kb.add([folder])
        store = SummaryStore(services.library.catalog.engine)
        complete(model, [Message("user", "Hi")], max_tokens=4)  # load and warm the model
        for lang, file in timed_files.items():
            text = "\n".join(file_chunks(kb, file))  # as the summary reads it
            entry: dict[str, Any] = {
                "file": file,
                "tokens": model.count_tokens(text),
                "words": len(text.split()),
                "characters": len(text),
            }
            results["ten_pages"][lang] = entry
            for strategy in strategies:
                entry[strategy] = timed(services, kb, file, strategy, store)
                print(
                    json.dumps(
                        {"ten_pages": lang, "strategy": strategy}
                        | {
                            k: v
                            for k, v in entry[strategy].items()
                            if k not in ("steps", "summary")
                        }
                    ),
                    flush=True,
                )
                save(results, args.out)
            entry["auto"] = auto_choice(services, kb, file)
            save(results, args.out)
        for doc in documents:
            doc["tokens"] = model.count_tokens(doc["text"])
        results["coverage_set"] = {
            "documents": len(documents),
            "facts": sum(len(d["facts"]) for d in documents),
            "median_tokens": statistics.median(d["tokens"] for d in documents) if documents else 0,
        }
        if documents:
            coverage(services, kb, documents, strategies, store, results, args.out)
    finally:
        services.close()
        shutil.rmtree(work, ignore_errors=True)
    print(
        json.dumps(
            {k: v for k, v in results.items() if k not in ("ten_pages", "coverage_documents")},
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
