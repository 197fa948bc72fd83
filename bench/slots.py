"""Parallel slots of the embedded llama.cpp model: aggregate tokens/s of k streams at once.

Loads the embedded 0.5B model once with ``parallel = max(k)`` slots and, in rounds, runs
1 stream, then k streams at once (each a different question, so llama.cpp's prompt cache
cannot help), for every k. Rounds interleave the levels, so a change in the machine's
load (it is shared) hits all levels alike. Reports per level the generated tokens, wall
time, aggregate generation tokens/s (median over rounds) and the speed-up over one stream.

Usage::

    KBCHAT_MODEL_CACHE=/work/.model-cache .venv/bin/python bench/slots.py --streams 1,2,4

Writes bench/results/slots.json with the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import threading
import time
from pathlib import Path
from typing import Any

from kbchat.llm.llamacpp import LlamaCppChatModel
from kbchat.types import Message

RESULTS = Path(__file__).parent / "results" / "slots.json"
REPO = Path(__file__).resolve().parents[1]
QUESTIONS = [
    "Explain what a hash map is.",
    "Describe the TCP three-way handshake.",
    "How do I sort a list in Go?",
    "What is recursion? Give an example.",
    "How does binary search work?",
    "What does HTTP status 429 mean?",
    "Explain the difference between a process and a thread.",
    "What is a Python generator?",
    "什么是向量数据库？",
    "解释一下什么是二分查找。",
]


def run_level(
    model: LlamaCppChatModel, streams: int, first: int, max_tokens: int
) -> dict[str, Any]:
    """``streams`` answers at once; returns their tokens and the wall time."""
    tokens = [0] * streams

    def answer(i: int) -> None:
        question = f"{QUESTIONS[(first + i) % len(QUESTIONS)]} (#{first + i})"
        for delta in model.stream([Message("user", question)], max_tokens=max_tokens):
            if delta.usage is not None:
                tokens[i] = delta.usage.completion_tokens

    threads = [threading.Thread(target=answer, args=(i,)) for i in range(streams)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    return {"tokens": sum(tokens), "wall_s": wall, "tokens_per_s": sum(tokens) / wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", default="1,2,4", help="Comma-separated stream counts.")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()
    levels = sorted({int(n) for n in args.streams.split(",")} | {1})
    cache = Path(os.environ.get("KBCHAT_MODEL_CACHE") or REPO / ".cache" / "models")
    load_before = os.getloadavg()
    model = LlamaCppChatModel(models_dir=cache, n_ctx=2048, parallel=max(levels))
    run_level(model, 1, 1000, 8)  # warm-up
    runs: dict[int, list[dict[str, Any]]] = {k: [] for k in levels}
    asked = 0
    for _ in range(args.rounds):
        for k in levels:
            runs[k].append(run_level(model, k, asked, args.max_tokens))
            asked += k
    model.close()
    single = statistics.median(r["tokens_per_s"] for r in runs[1])
    report = {
        "benchmark": "slots",
        "model": model.path.name,
        "parallel": max(levels),
        "max_tokens": args.max_tokens,
        "rounds": args.rounds,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_avg_before": load_before,
            "load_avg_after": os.getloadavg(),
        },
        "levels": [
            {
                "streams": k,
                "tokens_per_s_median": round(statistics.median(r["tokens_per_s"] for r in rs), 1),
                "tokens_per_s_runs": [round(r["tokens_per_s"], 1) for r in rs],
                "speedup_vs_one": round(
                    statistics.median(r["tokens_per_s"] for r in rs) / single, 2
                ),
            }
            for k, rs in runs.items()
        ],
        "notes": "Aggregate generation tokens/s of k concurrent streams on one model with "
        "max(k) parallel slots (continuous batching). The 2 cores are shared with other "
        "jobs: see the load averages.",
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps(report["levels"]))


if __name__ == "__main__":
    main()
