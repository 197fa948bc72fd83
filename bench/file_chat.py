"""File chat benchmark: a small file put whole into the prompt vs searched like a knowledge base.

Usage: python bench/file_chat.py [--per-set 10] [--file-tokens 1200] [--modes whole,search,kb]
       [--out PATH]

For each sampled question, one "small file" (about ``--file-tokens`` tokens, under two
pages) holds the question's gold article(s) among other articles of the same set, in
random order. The file is attached as in ``kbchat ask --file`` (a temporary knowledge
base) and the question answered with the embedded model per mode: ``whole`` (every chunk
in the prompt, files.whole_file_tokens large enough), ``search`` (top chunk.top_k chunks,
files.whole_file_tokens = 0, the default of ``--file``) and ``kb`` (the same question over a
knowledge base prepared beforehand from every sampled question's file of the set, as
``kbchat ask KB`` would; its build time is reported once, attach_s is 0). Accuracy (the
answer holds a required answer), time to attach and time to first token per mode.
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
from kbchat.chat.files import answer_sources
from kbchat.chat.rag import stream_answer
from kbchat.config import load_settings
from kbchat.eval.answers import answer_is_correct
from kbchat.llm.base import complete
from kbchat.options import answer_search_options, chat_options
from kbchat.runtime import configure_process
from kbchat.types import Answer, Message

EVAL = Path(__file__).resolve().parents[2] / "shared" / "eval" / "dev"
MODES = {"whole": 100_000, "search": 0, "kb": 0}
"""Mode -> files.whole_file_tokens (``kb`` asks the prepared knowledge base instead)."""


def load(name: str) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    with (EVAL / name / "corpus.jsonl").open(encoding="utf-8") as handle:
        corpus = {row["id"]: row for row in map(json.loads, handle)}
    with (EVAL / name / "queries.jsonl").open(encoding="utf-8") as handle:
        queries = list(map(json.loads, handle))
    return corpus, queries


def small_file(
    gold: list[dict[str, Any]],
    corpus: dict[str, dict[str, Any]],
    tokens: int,
    count: Any,
    rng: random.Random,
) -> str:
    """The gold articles among random others, about ``tokens`` tokens in all."""
    articles = [f"{row['title']}\n{row['text']}" for row in gold]
    used = sum(count(a) for a in articles)
    ids = list(corpus)
    while used < tokens:
        row = corpus[rng.choice(ids)]
        article = f"{row['title']}\n{row['text']}"
        if used + count(article) > tokens:
            break
        articles.append(article)
        used += count(article)
    rng.shuffle(articles)
    return "\n\n".join(articles)


def run_set(services: Any, name: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    corpus, queries = load(name)
    rng = random.Random(args.seed)
    sample = rng.sample([q for q in queries if q.get("split") == args.split], args.per_set)
    model = services.models.get(args.model)
    settings = services.settings
    options = chat_options(settings, answer_search_options(settings), max_tokens=args.max_tokens)
    chats = services.file_chats()
    modes = args.modes.split(",")
    paths = []
    for n, q in enumerate(sample):
        gold = [corpus[d] for d in q["gold_doc_ids"] if d in corpus]
        text = small_file(gold, corpus, args.file_tokens, model.count_tokens, rng)
        path = work / name / f"q{n}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    prepared, build_s = None, 0.0
    if "kb" in modes:
        started = time.perf_counter()
        prepared = services.library.ensure(f"prepared-{name.replace('_', '-')}")
        prepared.add([work / name])
        build_s = time.perf_counter() - started
    complete(model, [Message("user", "Hello")], max_tokens=1)  # load it before timing
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    # mode by mode, so that no answer reuses the model's cache of the same prompt just asked
    for mode in modes:
        for q, path in zip(sample, paths, strict=True):
            attach_s = 0.0
            if mode == "kb":
                kbs, opts = [prepared], options
            else:
                started = time.perf_counter()
                chats.attach(q["id"], None, [path])
                attach_s = time.perf_counter() - started
                kb = chats.find(q["id"], None)
                kbs, opts = answer_sources([], kb, model, options, whole_tokens=MODES[mode])
            final = list(stream_answer(model, kbs, q["question"], options=opts))[-1]
            assert isinstance(final, Answer)
            row = {
                "id": q["id"],
                "file_tokens": model.count_tokens(path.read_text(encoding="utf-8")),
                "answer": final.text,
                "correct": answer_is_correct(final.text, q["answers_required"]),
                "attach_s": round(attach_s, 2),
                "ttft_s": final.timings.get("ttft_s"),
                "total_s": final.timings.get("total_s"),
                "prompt_tokens": final.usage.prompt_tokens,
            }
            rows[mode].append(row)
            print(json.dumps({"set": name, "mode": mode, **row}, ensure_ascii=False), flush=True)
            if mode != "kb":
                chats.delete(q["id"], None)
    results = {mode: summarise(mode_rows) for mode, mode_rows in rows.items()}
    if prepared is not None:
        results["kb"]["build_s"] = round(build_s, 1)
        results["kb"]["kb_files"] = len(paths)
    return results


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "questions": len(rows),
        "accuracy": round(100 * sum(r["correct"] for r in rows) / len(rows), 1),
        "median_file_tokens": statistics.median(r["file_tokens"] for r in rows),
        "median_attach_s": round(statistics.median(r["attach_s"] for r in rows), 2),
        "median_ttft_s": round(statistics.median(r["ttft_s"] for r in rows), 2),
        "median_total_s": round(statistics.median(r["total_s"] for r in rows), 2),
        "median_prompt_tokens": statistics.median(r["prompt_tokens"] for r in rows),
        "rows": rows,
    }


def save(results: dict[str, Any], out: Path) -> None:
    results["load_average"] = [round(x, 1) for x in os.getloadavg()]  # the machine is shared
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n")


def main() -> None:
    configure_process()  # what the CLI and server set: OpenMP policy, FAISS threads
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--per-set", type=int, default=10)
    parser.add_argument("--file-tokens", type=int, default=1200)
    parser.add_argument("--sets", default="cmrc2018_zh,hotpotqa_en")
    parser.add_argument("--modes", default="whole,search,kb")
    parser.add_argument("--model", default=None)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--split", default="dev")
    parser.add_argument("--out", type=Path, default=Path("bench/results/file_chat.json"))
    args = parser.parse_args()
    unknown = set(args.modes.split(",")) - set(MODES)
    if unknown:
        parser.error(f"unknown modes: {', '.join(sorted(unknown))}; known: {', '.join(MODES)}")
    work = Path(tempfile.mkdtemp(prefix="kbchat-filechat-"))
    services = build(load_settings(home=work / "home"))
    results: dict[str, Any] = {
        "benchmark": "file_chat",
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "model": services.settings.default_model,
        "embedder": services.settings.embedder.backend,
        "split": args.split,
        "file_tokens": args.file_tokens,
        "top_k": services.settings.chat.top_k,
        "sets": {},
    }
    try:
        for name in args.sets.split(","):
            results["sets"][name] = run_set(services, name, args, work)
            save(results, args.out)  # each set as it is done
    finally:
        services.close()
        shutil.rmtree(work, ignore_errors=True)
    summary = {
        name: {mode: {k: v for k, v in s.items() if k != "rows"} for mode, s in modes.items()}
        for name, modes in results["sets"].items()
    }
    print(json.dumps(summary, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
