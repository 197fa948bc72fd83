"""Load on one `kbchat serve`: N concurrent clients streaming knowledge-base answers.

Starts `kbchat serve` on a free loopback port with a fresh data directory (the sample KB
is built on first start) and the embedded 0.5B model, warms the model up, then for each
N sends N streaming ``/api/chat`` requests at once and records, per level: answers
completed, errors, requests refused with 429/503 (and their Retry-After), and the p50 /
p95 time to the first streamed token (TTFT) of the completed ones. Every request has a
timeout and the whole run a time budget, so the benchmark always ends; the server is
stopped at the end.

Usage::

    .venv/bin/python bench/load.py --clients 1,4,16,64 --max-tokens 48

Writes bench/results/load.json. The machine is shared: the load average at start is
recorded with the numbers.
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
from dataclasses import dataclass
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
]
TEMPLATES = [
    "How does kbchat handle {}?",
    "What should I know about {} in kbchat?",
    "Explain {} briefly.",
    "关于 {}，kbchat 是怎么做的？",
]
# Every request asks a different question: llama.cpp's prompt cache would make repeated
# questions look far faster than real traffic.
QUESTIONS = [t.format(topic) for t in TEMPLATES for topic in TOPICS]
WARM_UP = "What is kbchat?"


@dataclass(slots=True)
class Outcome:
    """One request: how it ended and when its first token arrived."""

    status: str  # completed, refused, error
    http_status: int | None = None
    ttft_s: float | None = None
    total_s: float = 0.0
    retry_after: str | None = None
    detail: str = ""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(home: Path, port: int) -> subprocess.Popen[bytes]:
    cache = os.environ.get("KBCHAT_MODEL_CACHE") or str(REPO / ".cache" / "models")
    env = {
        **os.environ,
        "KBCHAT_HOME": str(home),
        "KBCHAT_MODEL_CACHE": cache,
        "PYTHONPATH": str(REPO),
    }
    env.pop("KBCHAT_CONFIG", None)
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


async def ask(client: httpx.AsyncClient, question: str, max_tokens: int, timeout: float) -> Outcome:
    started = time.perf_counter()
    body = {"question": question, "kbs": [KB], "max_tokens": max_tokens}
    try:
        async with (
            asyncio.timeout(timeout),
            client.stream("POST", "/api/chat", json=body) as response,
        ):
            if response.status_code in (429, 503):
                await response.aread()
                return Outcome(
                    "refused",
                    response.status_code,
                    total_s=time.perf_counter() - started,
                    retry_after=response.headers.get("retry-after"),
                )
            if response.status_code != 200:
                text = (await response.aread()).decode(errors="replace")
                return Outcome(
                    "error",
                    response.status_code,
                    detail=text[:200],
                    total_s=time.perf_counter() - started,
                )
            return await _read_events(response, started)
    except (TimeoutError, httpx.HTTPError) as exc:
        return Outcome(
            "error",
            detail=f"{type(exc).__name__}: {exc}"[:200],
            total_s=time.perf_counter() - started,
        )


async def _read_events(response: httpx.Response, started: float) -> Outcome:
    ttft: float | None = None
    event = ""
    async for line in response.aiter_lines():
        if line.startswith("event: "):
            event = line[7:]
            if event == "delta" and ttft is None:
                ttft = time.perf_counter() - started
            if event == "done":
                return Outcome("completed", 200, ttft, time.perf_counter() - started)
        elif line.startswith("data: ") and event == "error":
            return Outcome("error", 200, ttft, time.perf_counter() - started, detail=line[6:200])
    return Outcome("error", 200, ttft, time.perf_counter() - started, detail="stream cut short")


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
    refused = [o for o in outcomes if o.status == "refused"]
    return {
        "clients": n,
        "completed": len(done),
        "errors": sum(o.status == "error" for o in outcomes),
        "refused": len(refused),
        "refused_429": sum(o.http_status == 429 for o in refused),
        "refused_503": sum(o.http_status == 503 for o in refused),
        "refused_p95_s": percentile([o.total_s for o in refused], 0.95),
        "retry_after_s": sorted({o.retry_after for o in refused if o.retry_after}),
        "ttft_p50_s": percentile(ttfts, 0.5),
        "ttft_p95_s": percentile(ttfts, 0.95),
        "total_p50_s": percentile([o.total_s for o in done], 0.5),
        "wall_s": round(wall_s, 2),
        "answers_per_min": round(60 * len(done) / wall_s, 2) if wall_s else None,
        "error_samples": [o.detail for o in outcomes if o.status == "error"][:3],
    }


async def run(args: argparse.Namespace, url: str) -> dict[str, Any]:
    levels: list[dict[str, Any]] = []
    limits = httpx.Limits(max_connections=max(args.clients) + 8)
    async with httpx.AsyncClient(base_url=url, timeout=args.timeout, limits=limits) as client:
        build_s = await wait_ready(client, args.ready_timeout)
        configured = (await client.get("/api/settings")).json()
        warm = await ask(client, WARM_UP, args.max_tokens, args.timeout)
        print(
            f"sample KB built in {build_s:.0f} s; warm-up answer: {warm.status}, "
            f"{warm.total_s:.1f} s",
            flush=True,
        )
        budget_end = time.monotonic() + args.budget
        asked = 0
        for n in args.clients:
            if time.monotonic() > budget_end:
                levels.append({"clients": n, "skipped": "time budget spent"})
                continue
            await wait_idle(client)
            started = time.perf_counter()
            questions = [QUESTIONS[(asked + i) % len(QUESTIONS)] for i in range(n)]
            asked += n
            outcomes = await asyncio.gather(
                *(ask(client, q, args.max_tokens, args.timeout) for q in questions)
            )
            level = summarise(n, outcomes, time.perf_counter() - started)
            levels.append(level)
            print(json.dumps(level, ensure_ascii=False), flush=True)
    server = {
        key: configured["server"][key]
        for key in ("max_generations", "queue_size", "queue_timeout_s")
    }
    server.update(model=configured["default_model"], embedder=configured["embedder"]["backend"])
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
    parser.add_argument("--max-tokens", type=int, default=48, help="Tokens per answer.")
    parser.add_argument("--timeout", type=float, default=300.0, help="Per request, seconds.")
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
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="kbchat-load-") as tmp:
        home = Path(tmp)
        port = free_port()
        process = start_server(home, port)
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
        },
        "request": {
            "endpoint": "POST /api/chat (stream)",
            "kb": KB,
            "top_k": 4,
            "max_tokens": args.max_tokens,
            "timeout_s": args.timeout,
        },
        **measured,
        "notes": "Each level sends all N requests at once. Defaults: one generation at a "
        "time and 16 waiting; a request beyond that is refused at once (429) and "
        "one that waits more than 120 s gets 503. TTFT includes queueing.",
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
