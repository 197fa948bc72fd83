"""Time to first token of ``kbchat ask`` against xllamacpp called directly with the same prompt.

For each question, in one process and one loaded model:

1. a short "flush" request, so the runtime's prompt cache holds nothing of what follows (the
   host-memory prompt cache is switched off for this benchmark, or the second of two identical
   prompts would be served from it);
2. the ``kbchat ask`` path (``stream_answer``: question checks, retrieval, prompt budgeting,
   the streaming wrapper); its messages to the model are recorded;
3. another flush;
4. the identical messages sent straight to xllamacpp's ``handle_chat_completions``.

kbchat's overhead is ``(ttft_ask - retrieval_s) / ttft_raw - 1``: what kbchat adds to time to
first token beyond retrieval (the issue's target is under 10%). Generation speed is compared
the same way (tokens after the first / seconds after the first token). It also measures how
long a cancel during a long prompt takes to end the stream and free the model.

Usage::

    .venv/bin/python bench/llm_overhead.py [--rounds 2]

Writes bench/results/llm_overhead.json, with the load average at start and end: compare runs
taken at low load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from kbchat.app import build
from kbchat.chat.rag import ChatOptions, stream_answer
from kbchat.config import load_settings
from kbchat.llm import complete, llamacpp
from kbchat.llm.llamacpp import LlamaCppChatModel
from kbchat.runtime import configure_process
from kbchat.sample import sample_dir
from kbchat.types import Answer, Delta, Message

RESULTS = Path(__file__).parent / "results" / "llm_overhead.json"
REPO = Path(__file__).resolve().parents[1]
QUESTIONS = [
    "Which file formats can kbchat ingest?",
    "How do I point kbchat at an OpenAI-compatible server?",
    "What does the no_hit setting do?",
    "kbchat 支持哪些文件格式？",
    "如何更换嵌入模型？",
    "知识库检索的默认阈值是多少？",
]
MAX_TOKENS = 64


class Recording:
    """Passes calls through to the model and keeps the last messages it was asked to answer."""

    def __init__(self, model: LlamaCppChatModel) -> None:
        self.model = model
        self.messages: list[Message] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)

    def stream(self, messages: Sequence[Message], **kwargs: Any) -> Iterator[Delta]:
        self.messages = list(messages)
        return self.model.stream(messages, **kwargs)


def flush(model: LlamaCppChatModel, run: int) -> None:
    complete(model, [Message("system", f"Flush {run}."), Message("user", "OK")], max_tokens=1)


def ask(recording: Recording, kb: Any, question: str) -> dict[str, float]:
    options = ChatOptions(
        max_tokens=MAX_TOKENS, temperature=0.0, min_score=0.0, min_score_cross=0.0
    )
    started = time.perf_counter()
    final = list(stream_answer(recording, [kb], question, options=options))[-1]  # type: ignore[arg-type]
    wall = time.perf_counter() - started
    assert isinstance(final, Answer) and final.usage is not None
    timings = final.timings
    return {
        "retrieval_s": timings["retrieval_s"],
        "ttft_s": timings["ttft_s"],
        "total_s": timings.get("total_s", wall),
        "completion_tokens": final.usage.completion_tokens,
        "prompt_tokens": final.usage.prompt_tokens,
    }


def raw(model: LlamaCppChatModel, messages: list[Message]) -> dict[str, float]:
    """The same messages straight through xllamacpp, as a caller of the runtime would send them."""
    request = {
        "messages": [{"role": m.role, "content": m.content} for m in messages],
        "stream": True,
        "temperature": 0.0,
        "max_tokens": MAX_TOKENS,
    }
    first: list[float] = []
    pieces = 0
    started = time.perf_counter()

    def on_chunk(chunk: dict[str, Any]) -> bool:
        nonlocal pieces
        for choice in chunk.get("choices", ()):
            if (choice.get("delta") or {}).get("content"):
                pieces += 1
                if not first:
                    first.append(time.perf_counter() - started)
        return False

    model._server.handle_chat_completions(request, on_chunk)
    total = time.perf_counter() - started
    return {"ttft_s": first[0] if first else total, "total_s": total, "completion_tokens": pieces}


def per_token_s(row: dict[str, float]) -> float:
    return (row["total_s"] - row["ttft_s"]) / max(row["completion_tokens"] - 1, 1)


def measure_cancel(model: LlamaCppChatModel) -> dict[str, float | bool]:
    cancel = threading.Event()
    article = "Warranty terms: the device is covered for two years. 保修期为两年。 " * 60
    timer = threading.Timer(1.0, cancel.set)
    started = time.perf_counter()
    timer.start()
    _, _, finish = complete(model, [Message("user", "Cancel test. " + article)], cancel=cancel)
    ended = time.perf_counter() - started - 1.0
    started = time.perf_counter()
    complete(model, [Message("user", "Say OK.")], max_tokens=2)
    return {
        "finish": finish == "cancelled",
        "stream_ended_after_cancel_s": round(ended, 3),
        "next_request_s": round(time.perf_counter() - started, 3),
    }


def main() -> None:
    configure_process()  # what the CLI and server set: OpenMP policy, FAISS threads
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2, help="passes over the questions")
    args = parser.parse_args()
    load_start = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="kbchat-overhead-"))
    os.environ.setdefault("KBCHAT_MODEL_CACHE", str(REPO / ".cache" / "models"))
    llamacpp._PROMPT_CACHE_MIB = 0
    services = build(load_settings(home=work / "home"))
    try:
        kb = services.library.ensure("sample")
        kb.add([sample_dir()], exclude=["__init__.py", "*.pyc", "__pycache__"])
        model = services.models.get(None)
        assert isinstance(model, LlamaCppChatModel)
        recording = Recording(model)
        rows = []
        for run in range(args.rounds * len(QUESTIONS)):
            question = QUESTIONS[run % len(QUESTIONS)]
            flush(model, 2 * run)
            asked = ask(recording, kb, question)
            flush(model, 2 * run + 1)
            direct = raw(model, recording.messages)
            rows.append({"question": question, "ask": asked, "raw": direct})
            print(json.dumps(rows[-1], ensure_ascii=False), flush=True)
        cancel = measure_cancel(model)
    finally:
        services.close()
        shutil.rmtree(work, ignore_errors=True)

    def median(values: list[float]) -> float:
        return round(statistics.median(values), 4)

    ttft_overhead = [
        (r["ask"]["ttft_s"] - r["ask"]["retrieval_s"]) / r["raw"]["ttft_s"] - 1 for r in rows
    ]
    summary = {
        "questions": len(rows),
        "median_prompt_tokens": median([r["ask"]["prompt_tokens"] for r in rows]),
        "median_retrieval_s": median([r["ask"]["retrieval_s"] for r in rows]),
        "median_ask_ttft_s": median([r["ask"]["ttft_s"] for r in rows]),
        "median_raw_ttft_s": median([r["raw"]["ttft_s"] for r in rows]),
        "median_ttft_overhead_beyond_retrieval": median(ttft_overhead),
        "mean_ttft_overhead_beyond_retrieval": round(statistics.fmean(ttft_overhead), 4),
        "median_ask_s_per_token": median([per_token_s(r["ask"]) for r in rows]),
        "median_raw_s_per_token": median([per_token_s(r["raw"]) for r in rows]),
    }
    result = {
        "model": model.name,
        "machine": {
            "cpus": os.cpu_count(),
            "load_avg_1min_start": load_start,
            "load_avg_1min_end": os.getloadavg()[0],
            "python": platform.python_version(),
        },
        "summary": summary,
        "cancel": cancel,
        "runs": rows,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n")
    print(json.dumps(summary | {"cancel": cancel}, indent=2))


if __name__ == "__main__":
    main()
