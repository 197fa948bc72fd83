"""Load on one `kbchat serve`: N concurrent clients streaming knowledge-base answers.

Starts `kbchat serve` on a free loopback port with a fresh data directory (the sample KB
is built on first start) and the embedded 0.5B model, warms the model up, then for each
N sends N streaming ``/api/chat`` requests at once. A client refused with 429 waits the
``Retry-After`` it was given and tries again (at most ``--retries`` times), as a real
client would; so the level also shows whether Retry-After was honest. Recorded per
level: answers completed, errors, refusals (and whether the retry after Retry-After was
admitted), the places the queue gave (``X-Queue-Position``, ``: queued`` comments),
aggregate generation tokens/s (completion tokens of all answers / the level's wall time)
and the p50 / p95 time to the first streamed token (TTFT, from the first attempt, so it
includes queueing and retries). Every request has a timeout and the whole run a time
budget, so the benchmark always ends; the server is stopped at the end.

Usage::

    .venv/bin/python bench/load.py --clients 1,4,16,64 --max-tokens 128

Every level asks the same kind of request: a knowledge-base answer generated over the
``--top-k`` retrieved passages. The server runs with ``chat.min_score``,
``min_score_cross``, ``min_evidence`` and ``min_coverage`` at 0 and ``chat.verify`` off (the
answerability checks off) and ``chat.no_hit = "fallback"``, so no question is declined
before the model runs, answered without passages in the prompt, or generated twice (a
declined answer's prompt is much shorter, a fallback after a declined start costs two
generations: either would skew its level); each level reports how many answers rested on
passages (``answered_from_kb``). The one-client
level asks ``--single`` (16) questions one after another and its tokens/s is their tokens
over their summed wall time; every other level reports its aggregate tokens/s as a multiple
of it (``vs_single``). Every question is asked once in a run (104 of them, 26 topics in four
phrasings, one Chinese): llama.cpp keeps earlier prompts in memory and answers a repeated
question's prompt several times faster (a repeat of the 1-client level's questions at 4
clients took 2.8 s to the first token instead of 7.6 s). Writes bench/results/load.json. The machine
is shared: the load average (as `uptime` shows it) before and after each level is recorded
with the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

RESULTS = Path(__file__).parent / "results" / "load.json"
REPO = Path(__file__).resolve().parents[1]
KB = "kbchat-docs"
TOPICS = [
    "adding files",
    "file types",
    "the web server",
    "the score threshold",
    "remote models",
    "the data directory",
    "OCR of images",
    "Excel sheets",
    "PDF page numbers",
    "chunk size",
    "hybrid search",
    "API keys",
    "the sample knowledge base",
    "rebuilding indexes",
    "Chinese documents",
    "citations",
    "the embedder",
    "deleting files",
    "syncing a folder",
    "the OpenAI-compatible API",
    "conversation history",
    "installing kbchat",
    "the job queue",
    "workers on other machines",
    "summaries of files",
    "chatting with an attached file",
]
TEMPLATES = [
    "How does kbchat handle {}?",
    "What should I know about {} in kbchat?",
    "Explain {} briefly.",
    "关于 {}，kbchat 是怎么做的？",
]
# A different topic for each of the first 26 questions, the four phrasings (one Chinese) in
# turn; no question twice in a run (see the module docstring: the prompt cache).
QUESTIONS = [
    TEMPLATES[(i + j) % len(TEMPLATES)].format(topic)
    for j in range(len(TEMPLATES))
    for i, topic in enumerate(TOPICS)
]
WARM_UP = "What is kbchat?"


@dataclass(slots=True)
class Outcome:
    """One client's question: how it ended, its first token, its queue places, refusals."""

    status: str  # completed, refused, error
    http_status: int | None = None
    ttft_s: float | None = None
    total_s: float = 0.0
    tokens: int = 0
    positions: list[int] = field(default_factory=list)  # X-Queue-Position of each admission
    comments: int = 0  # ": queued" comment lines received
    outcome: str = ""  # the answer's outcome (answered, fallback, refused)
    retry_after: list[float] = field(default_factory=list)  # of each 429
    admitted_after_retry: bool | None = None
    detail: str = ""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(home: Path, port: int, embedder: str | None) -> subprocess.Popen[bytes]:
    cache = os.environ.get("KBCHAT_MODEL_CACHE") or str(REPO / ".cache" / "models")
    env = {
        **os.environ,
        "KBCHAT_HOME": str(home),
        "KBCHAT_MODEL_CACHE": cache,
        "PYTHONPATH": str(REPO),
    }
    env.pop("KBCHAT_CONFIG", None)
    # Every request must be the same kind of work: retrieval, then generation over the
    # passages. The answerability checks would decline some questions before the model runs
    # (measuring nothing) and "refuse" would answer others with no passages at all.
    env["KBCHAT_CHAT__NO_HIT"] = "fallback"
    env["KBCHAT_CHAT__MIN_EVIDENCE"] = "0"
    env["KBCHAT_CHAT__MIN_COVERAGE"] = "0"
    env["KBCHAT_CHAT__MIN_SCORE"] = "0"
    env["KBCHAT_CHAT__MIN_SCORE_CROSS"] = "0"
    # No check of the answer's start either: a declined start is followed, under "fallback",
    # by a second generation without passages, so some requests would cost two.
    env["KBCHAT_CHAT__VERIFY"] = "false"
    if embedder:
        env["KBCHAT_EMBEDDER__BACKEND"] = embedder
    log = (home / "serve.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "kbchat", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=home,
    )


def stop_server(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


async def wait_ready(client: httpx.AsyncClient, timeout: float) -> float:
    """Wait for the server and the sample KB's build; returns the seconds the build took."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            jobs = (await client.get("/api/jobs", params={"kb": KB})).json()
            if jobs and jobs[0]["status"] == "done":
                return float(jobs[0]["finished_at"] - jobs[0]["started_at"])
            if jobs and jobs[0]["status"] == "failed":
                raise RuntimeError(f"sample KB build failed: {jobs[0]['error']}")
        except httpx.HTTPError:
            pass
        await asyncio.sleep(1)
    raise TimeoutError(f"server not ready after {timeout:.0f} s")


async def ask(
    client: httpx.AsyncClient, question: str, args: argparse.Namespace, started: float
) -> Outcome:
    """Ask until answered, an error, or ``args.retries`` refusals (waiting Retry-After)."""
    outcome = Outcome("refused")
    body = {"question": question, "kbs": [KB], "max_tokens": args.max_tokens, "top_k": args.top_k}
    for attempt in range(args.retries + 1):
        try:
            async with (
                asyncio.timeout(args.timeout),
                client.stream("POST", "/api/chat", json=body) as response,
            ):
                outcome.http_status = response.status_code
                if response.status_code == 429:
                    await response.aread()
                    wait = float(response.headers.get("retry-after", "1"))
                    outcome.retry_after.append(wait)
                    if attempt == args.retries:
                        break
                    await asyncio.sleep(wait)
                    continue
                if response.status_code != 200:
                    text = (await response.aread()).decode(errors="replace")
                    outcome.status, outcome.detail = "error", text[:200]
                    break
                if attempt > 0:
                    outcome.admitted_after_retry = True
                outcome.positions.append(int(response.headers.get("x-queue-position", "-1")))
                await _read_events(response, started, outcome)
                break
        except (TimeoutError, httpx.HTTPError) as exc:
            outcome.status, outcome.detail = "error", f"{type(exc).__name__}: {exc}"[:200]
            break
    if outcome.retry_after and outcome.admitted_after_retry is None:
        outcome.admitted_after_retry = False
    outcome.total_s = time.perf_counter() - started
    return outcome


async def _read_events(response: httpx.Response, started: float, outcome: Outcome) -> None:
    event = ""
    async for line in response.aiter_lines():
        if line.startswith(": queued"):
            outcome.comments += 1
        elif line.startswith("event: "):
            event = line[7:]
            if event == "delta" and outcome.ttft_s is None:
                outcome.ttft_s = time.perf_counter() - started
        elif line.startswith("data: ") and event == "done":
            outcome.status = "completed"
            done = json.loads(line[6:])
            outcome.tokens = done["usage"]["completion_tokens"]
            outcome.outcome = str(done.get("outcome") or "")
            return
        elif line.startswith("data: ") and event == "error":
            outcome.status, outcome.detail = "error", line[6:200]
            return
    outcome.status, outcome.detail = "error", "stream cut short"


async def wait_idle(client: httpx.AsyncClient, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        generations = (await client.get("/api/health")).json()["generations"]
        if generations["running"] == 0 and generations["waiting"] == 0:
            return
        await asyncio.sleep(0.5)


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))], 3)


def summarise(n: int, outcomes: list[Outcome], wall_s: float) -> dict[str, Any]:
    done = [o for o in outcomes if o.status == "completed"]
    ttfts = [o.ttft_s for o in done if o.ttft_s is not None]
    refused = [o for o in outcomes if o.retry_after]
    tokens = sum(o.tokens for o in done)
    return {
        "clients": n,
        "completed": len(done),
        "errors": sum(o.status == "error" for o in outcomes),
        "gave_up_after_retries": sum(o.status == "refused" for o in outcomes),
        "answered_from_kb": sum(o.outcome == "answered" for o in done),
        "completion_tokens": tokens,
        "aggregate_tokens_per_s": round(tokens / wall_s, 2) if wall_s else None,
        "ttft_p50_s": percentile(ttfts, 0.5),
        "ttft_p95_s": percentile(ttfts, 0.95),
        "total_p50_s": percentile([o.total_s for o in done], 0.5),
        "total_p95_s": percentile([o.total_s for o in done], 0.95),
        "wall_s": round(wall_s, 2),
        "queued_at_admission": sum(1 for o in done if o.positions and o.positions[-1] > 0),
        "max_queue_position": max((p for o in done for p in o.positions), default=0),
        "streams_with_queue_comments": sum(1 for o in done if o.comments),
        "refused_429": len(refused),
        "retry_after_s": percentile([w for o in refused for w in o.retry_after], 0.5),
        "admitted_on_retry": sum(1 for o in refused if o.admitted_after_retry),
        "error_samples": [o.detail for o in outcomes if o.status == "error"][:3],
    }


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


async def run(args: argparse.Namespace, url: str) -> dict[str, Any]:
    levels: list[dict[str, Any]] = []
    limits = httpx.Limits(max_connections=max(args.clients) + 8)
    async with httpx.AsyncClient(base_url=url, timeout=args.timeout, limits=limits) as client:
        build_s = await wait_ready(client, args.ready_timeout)
        configured = (await client.get("/api/settings")).json()
        warm = await ask(client, WARM_UP, args, time.perf_counter())
        print(
            f"sample KB built in {build_s:.0f} s; warm-up answer: {warm.status}, "
            f"{warm.total_s:.1f} s",
            flush=True,
        )
        budget_end = time.monotonic() + args.budget
        asked = 0
        single: float | None = None
        for n in args.clients:
            if time.monotonic() > budget_end:
                levels.append({"clients": n, "skipped": "time budget spent"})
                continue
            await wait_idle(client)
            load_before = uptime()
            if n == 1:
                outcomes, wall = [], 0.0
                for question in QUESTIONS[asked : asked + args.single]:
                    started = time.perf_counter()
                    outcomes.append(await ask(client, question, args, started))
                    wall += time.perf_counter() - started
                asked += args.single
                level = summarise(n, outcomes, wall)
                level["questions"] = args.single
                single = level["aggregate_tokens_per_s"]
            else:
                started = time.perf_counter()
                questions = [QUESTIONS[(asked + i) % len(QUESTIONS)] for i in range(n)]
                asked += n
                outcomes = await asyncio.gather(*(ask(client, q, args, started) for q in questions))
                level = summarise(n, outcomes, time.perf_counter() - started)
                if single:
                    level["vs_single"] = round(level["aggregate_tokens_per_s"] / single, 2)
            level.update(uptime_before=load_before, uptime_after=uptime())
            levels.append(level)
            print(json.dumps(level, ensure_ascii=False), flush=True)
    model = configured["default_model"]
    server = {key: configured["server"][key] for key in ("queue_size", "queue_timeout_s")}
    server.update(
        model=model,
        parallel=configured["models"][model].get("parallel"),
        embedder=configured["embedder"]["backend"],
    )
    return {
        "server": server,
        "sample_kb_build_s": round(build_s, 1),
        "warm_up_s": round(warm.total_s, 2),
        "levels": levels,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--clients", default="1,4,16,64", help="Comma-separated numbers of concurrent clients."
    )
    parser.add_argument(
        "--max-tokens", type=int, default=128, help="Tokens per answer (bench/answer.py's 128)."
    )
    parser.add_argument("--top-k", type=int, default=3, help="Passages per answer.")
    parser.add_argument("--out", type=Path, default=RESULTS, help="Where the JSON goes.")
    parser.add_argument(
        "--single",
        type=int,
        default=16,
        help="Questions asked one by one at the 1-client level.",
    )
    parser.add_argument(
        "--retries", type=int, default=3, help="Retries of a refused request (after Retry-After)."
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="Per request, seconds.")
    parser.add_argument(
        "--embedder", default=None, help="Embedder backend of the server (default: its own)."
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=1200.0,
        help="Levels not started within this many seconds are skipped.",
    )
    parser.add_argument(
        "--ready-timeout",
        type=float,
        default=900.0,
        help="Seconds to wait for the server and the sample KB.",
    )
    args = parser.parse_args()
    args.clients = [int(n) for n in args.clients.split(",") if n.strip()]
    load_before, uptime_before = os.getloadavg(), uptime()
    with tempfile.TemporaryDirectory(prefix="kbchat-load-") as tmp:
        home = Path(tmp)
        port = free_port()
        process = start_server(home, port, args.embedder)
        try:
            measured = asyncio.run(run(args, f"http://127.0.0.1:{port}"))
        finally:
            stop_server(process)
    report = {
        "benchmark": "load",
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_avg_at_start": load_before,
            "uptime_at_start": uptime_before,
        },
        "request": {
            "endpoint": "POST /api/chat (stream)",
            "kb": KB,
            "top_k": args.top_k,
            "max_tokens": args.max_tokens,
            "retries_after_429": args.retries,
            "timeout_s": args.timeout,
        },
        **measured,
        "notes": "Each level sends all N requests at once. The model generates "
        "models.<name>.parallel answers at once (llama.cpp parallel slots); the rest wait "
        "in a fair queue, admitted only if the estimated wait fits server.queue_timeout_s; "
        "a refused client waits its Retry-After and tries again. TTFT counts from the "
        "first attempt (queueing and retries included). The machine's 2 cores are shared "
        "with other jobs: see the uptime load averages per level.",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
