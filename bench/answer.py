"""Answer benchmark: accuracy and citation hit rate of KB chat with the embedded model,
next to the same model given the gold passage directly (oracle context).

Usage: python bench/answer.py [--per-set 60] [--distractors 300] [--out bench/results/answer.json]

Each set's knowledge base holds the gold passages of the sampled questions plus random
distractor passages (one passage per file, title on the first line), so retrieval has to
find the right one; the oracle run skips retrieval and puts the gold passage(s) in the prompt.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from kbchat.app import build
from kbchat.chat.rag import ChatOptions, build_messages, generate, stream_answer
from kbchat.config import load_settings
from kbchat.evaluate_answers import answer_is_correct
from kbchat.options import answer_search_options, chat_options
from kbchat.prompts import detect_language
from kbchat.types import Answer, Hit

EVAL = Path(__file__).resolve().parents[2] / "shared" / "eval" / "dev"


def load_set(
    name: str, per_set: int, distractors: int, seed: int, split: str = "test"
) -> tuple[list[dict], dict]:
    corpus = {}
    with (EVAL / name / "corpus.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            corpus[row["id"]] = row
    with (EVAL / name / "queries.jsonl").open(encoding="utf-8") as handle:
        queries = [q for q in map(json.loads, handle) if q.get("split") == split]
    rng = random.Random(seed)
    sample = rng.sample(queries, min(per_set, len(queries)))
    wanted = {doc for q in sample for doc in q["gold_doc_ids"] if doc in corpus}
    others = [doc for doc in corpus if doc not in wanted]
    wanted |= set(rng.sample(others, min(distractors, len(others))))
    return sample, {doc: corpus[doc] for doc in wanted}


def write_passages(folder: Path, passages: dict[str, dict]) -> None:
    folder.mkdir(parents=True)
    for doc_id, row in passages.items():
        (folder / f"{doc_id}.txt").write_text(
            f"{row.get('title', '')}\n{row['text']}", encoding="utf-8"
        )


def oracle_answer(model: Any, question: str, gold: list[dict], options: ChatOptions) -> Answer:
    hits = [
        Hit(
            kb="oracle",
            file=f"{row['id']}.txt",
            text=f"{row.get('title', '')}\n{row['text']}",
            score=1.0,
            chunk_id=i,
        )
        for i, row in enumerate(gold)
    ]
    messages, _ = build_messages(model, question, hits, [], options, detect_language(question))
    answer = Answer(text="", model=model.name, question=question)
    timings: dict[str, float] = {}
    for _ in generate(model, messages, options, answer, timings, time.perf_counter(), None):
        pass
    answer.timings = timings
    return answer


def run_set(services: Any, name: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    questions, passages = load_set(name, args.per_set, args.distractors, args.seed, args.split)
    folder = work / name
    write_passages(folder, passages)
    kb = services.library.ensure(name)
    kb.add([folder])
    model = services.models.get(args.model)
    settings = services.settings  # the options `kbchat ask` would use, but for these flags
    search = answer_search_options(settings, top_k=args.top_k)
    options = chat_options(settings, search, max_tokens=args.max_tokens)
    rows = []
    for q in questions:
        final = [e for e in stream_answer(model, [kb], q["question"], options=options)][-1]
        assert isinstance(final, Answer)
        gold = [passages[d] for d in q["gold_doc_ids"] if d in passages]
        oracle = oracle_answer(model, q["question"], gold, options) if args.oracle else None
        cited = {Path(c.file).stem for c in final.citations}
        rows.append(
            {
                "id": q["id"],
                "question": q["question"],
                "answer": final.text,
                "correct": answer_is_correct(final.text, q["answers_required"]),
                "cited_gold": bool(cited & set(q["gold_doc_ids"])),
                "grounded": final.grounded,
                "ttft_s": final.timings.get("ttft_s"),
                "total_s": final.timings.get("total_s"),
                "oracle_answer": oracle.text if oracle else None,
                "oracle_correct": answer_is_correct(oracle.text, q["answers_required"])
                if oracle
                else None,
            }
        )
        print(json.dumps(rows[-1], ensure_ascii=False), flush=True)
    return summarise(rows, len(passages))


def summarise(rows: list[dict[str, Any]], passages: int) -> dict[str, Any]:
    def pct(values: list[bool]) -> float:
        return round(100 * sum(values) / len(values), 1) if values else 0.0

    oracle = [r["oracle_correct"] for r in rows if r["oracle_correct"] is not None]
    return {
        "questions": len(rows),
        "kb_passages": passages,
        "accuracy": pct([r["correct"] for r in rows]),
        "oracle_accuracy": pct(oracle) if oracle else None,
        "citation_hit_rate": pct([r["cited_gold"] for r in rows]),
        "answered_from_kb": pct([r["grounded"] for r in rows]),
        "median_ttft_s": round(statistics.median(r["ttft_s"] for r in rows), 2),
        "median_total_s": round(statistics.median(r["total_s"] for r in rows), 2),
        "rows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--per-set", type=int, default=60)
    parser.add_argument("--distractors", type=int, default=300)
    parser.add_argument("--sets", default="cmrc2018_zh,hotpotqa_en")
    parser.add_argument("--model", default=None)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--no-oracle", dest="oracle", action="store_false")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--split", default="test", help="tune on dev, report on test")
    parser.add_argument("--top-k", type=int, default=None, help="sources (default: chat.top_k)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/answer.json"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kbchat-answer-"))
    services = build(load_settings(home=work / "home"))
    results: dict[str, Any] = {
        "benchmark": "answer",
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "model": services.settings.default_model,
        "split": args.split,
        "top_k": args.top_k or services.settings.chat.top_k,
        "sets": {},
    }
    try:
        for name in args.sets.split(","):
            results["sets"][name] = run_set(services, name, args, work)
    finally:
        services.close()
        shutil.rmtree(work, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n")
    summary = {k: {m: v for m, v in s.items() if m != "rows"} for k, s in results["sets"].items()}
    print(json.dumps(summary, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
