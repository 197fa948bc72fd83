"""Speed of the embedded chat model and the overhead kbchat's streaming wrapper adds.

For the default 0.5B model it measures, per run: prompt and generation throughput
(llama.cpp's own timings), time to the first streamed delta, the wrapper's overhead (wall
time through ``LlamaCppChatModel.stream`` minus the runtime's compute time for the same
request), the wall time of a similar request straight through the runtime, and how long
a cancel during a ~1,000-token prompt takes to end the stream and to free the model.

Usage::

    .venv/bin/python bench/llm_overhead.py --runs 3

Writes bench/results/llm_overhead.json. The machine is shared: the load average at start
is recorded with the numbers; compare runs taken at low load.
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

from kbchat.llm import complete
from kbchat.llm.assemble import ensure_default_model
from kbchat.llm.llamacpp import LlamaCppChatModel
from kbchat.types import Message

RESULTS = Path(__file__).parent / "results" / "llm_overhead.json"
REPO = Path(__file__).resolve().parents[1]
ARTICLE = (
    "Warranty terms: the device is covered for two years from the date of purchase. "
    "保修期为自购买之日起两年，人为损坏不在保修范围内。 "
) * 16


def measure_run(model: LlamaCppChatModel, run: int) -> dict[str, float]:
    # A different first word per run defeats llama.cpp's prompt cache.
    messages = [
        Message("system", f"Run {run}. Answer from the text."),
        Message("user", f"{ARTICLE}\nHow long is the warranty? Explain in detail."),
    ]
    started = time.perf_counter()
    first_delta: float | None = None
    for delta in model.stream(messages, temperature=0.0, max_tokens=64):
        if first_delta is None and delta.text:
            first_delta = time.perf_counter() - started
    wrapped_s = time.perf_counter() - started
    timings = model.last_timings
    raw_s = _raw_request(model, messages, run)
    return {
        "prompt_tokens": timings["prompt_n"],
        "prompt_tok_s": timings["prompt_per_second"],
        "generated_tokens": timings["predicted_n"],
        "generation_tok_s": timings["predicted_per_second"],
        "first_delta_s": first_delta or wrapped_s,
        "wrapped_s": wrapped_s,
        "raw_runtime_s": raw_s,
        "runtime_compute_s": (timings["prompt_ms"] + timings["predicted_ms"]) / 1000,
    }


def _raw_request(model: LlamaCppChatModel, messages: list[Message], run: int) -> float:
    """The same request (fresh prompt) straight through the runtime, without the wrapper."""
    request: dict[str, Any] = {
        "messages": [{"role": m.role, "content": m.content} for m in messages],
        "stream": True,
        "temperature": 0.0,
        "max_tokens": 64,
    }
    request["messages"][0]["content"] = f"Raw {run}. Answer from the text."
    started = time.perf_counter()
    model._server.handle_chat_completions(request, lambda _chunk: False)
    return time.perf_counter() - started


def measure_cancel(model: LlamaCppChatModel) -> dict[str, float]:
    cancel = threading.Event()
    messages = [Message("user", "Cancel test. " + ARTICLE * 2)]
    timer = threading.Timer(1.0, cancel.set)
    started = time.perf_counter()
    timer.start()
    _, _, finish = complete(model, messages, cancel=cancel)
    ended = time.perf_counter() - started - 1.0
    started = time.perf_counter()
    complete(model, [Message("user", "Say OK.")], max_tokens=2)
    return {
        "finish": finish == "cancelled",
        "stream_ended_after_cancel_s": ended,
        "next_request_s": time.perf_counter() - started,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    cache = Path(os.environ.get("KBCHAT_MODEL_CACHE") or REPO / ".cache" / "models")
    load_avg = os.getloadavg()[0]
    started = time.perf_counter()
    model = LlamaCppChatModel(path=ensure_default_model(cache), threads=args.threads)
    load_s = time.perf_counter() - started
    runs = [measure_run(model, run) for run in range(args.runs)]
    summary = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    # Same request: wall time through the wrapper minus the runtime's own compute time.
    summary["wrapper_overhead_s"] = statistics.median(
        r["wrapped_s"] - r["runtime_compute_s"] for r in runs
    )
    result = {
        "model": model.name,
        "machine": {
            "cpus": os.cpu_count(),
            "load_avg_1min": load_avg,
            "python": platform.python_version(),
        },
        "threads": args.threads,
        "load_s": load_s,
        "median": summary,
        "runs": runs,
        "cancel": measure_cancel(model),
    }
    model.close()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["median"] | {"cancel": result["cancel"]}, indent=2))


if __name__ == "__main__":
    main()
