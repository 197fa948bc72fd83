"""Agent benchmark: tool choice, format errors, answers with and without tools, steps, time.

Usage::

    python bench/agent.py --routing-only                 # tool choice only (no LLM), seconds
    python bench/agent.py --split dev                    # tune
    python bench/agent.py --split test                   # report
    python bench/agent.py --split test --limit 10 --threads 1

Questions (``bench/data/agent/questions.jsonl``, written for this benchmark, zh + en, half dev
and half test): 60 that need a tool (arithmetic; arithmetic over prices in a KB file, which
needs kb_search then the calculator; today's date and time; totals over a sales spreadsheet;
facts only a web search server holds) and 20 that need none. The knowledge base holds
``products.md`` and ``sales.csv``; the web search is a SearXNG-format server on loopback
over ``web_pages.json`` (fictional 2026 facts, so the model cannot know them).

Per question, with the default model (embedded Qwen2.5-0.5B unless configured otherwise)
and the agent as ``kbchat ask --agent`` runs it:
- tool choice: the tools called, in order, equal the expected ones (none for the 20);
- format errors: a tool call that could not be read or whose arguments broke the tool's
  schema (target 0);
- answer accuracy: the answer contains one of the expected strings (time answers are filled
  in from the clock at run time); "none" questions without expected strings count when
  answered at all; the same question answered by the model alone gives the "without tools"
  accuracy;
- steps (tool calls) and added seconds per turn (agent minus model alone).
Writes ``bench/results/agent-<split>.json``.
"""

from __future__ import annotations

import argparse
import calendar
import datetime as dt
import json
import os
import re
import statistics
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

from retrieval import code_version

from kbchat.app import Services, build
from kbchat.chat.agent import ExampleRouter, build_tools, kb_evidence, stream_agent
from kbchat.chat.plain import stream_chat
from kbchat.chat.tools import ToolContext
from kbchat.config import load_settings
from kbchat.errors import KbchatError
from kbchat.types import Answer, ToolStep

BENCH = Path(__file__).resolve().parent
DATA = BENCH / "data" / "agent"
RESULTS = BENCH / "results"
FORMAT_ERRORS = re.compile(r"not JSON|names no known tool|bad arguments|not a JSON object")


def load_questions(
    split: str | None, limit: int | None, categories: list[str] | None = None
) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in (DATA / "questions.jsonl").read_text().splitlines()]
    rows = [r for r in rows if split in (None, "all") or r["split"] == split]
    rows = [r for r in rows if not categories or r["category"] in categories]
    return rows[:limit] if limit else rows


def expected_strings(row: dict[str, Any], now: dt.datetime) -> list[str]:
    """The answers of ``row`` with clock placeholders filled in."""
    end = dt.date(now.year, 12, 31)
    values = {
        "date_iso": now.date().isoformat(),
        "month_day_en": f"{calendar.month_name[now.month]} {now.day}",
        "weekday_en": now.strftime("%A"),
        "weekday_zh": "星期" + "一二三四五六日"[now.weekday()],
        "year": str(now.year),
        "hour": str(now.hour),
        "days_left": str((end - now.date()).days),
        "weekend_en": "yes" if now.weekday() >= 5 else "no",
        "month_en": calendar.month_name[now.month],
        "month_zh": f"{now.month}月",
        "md_zh": f"{now.month}月{now.day}日",
    }
    return [a.format(**values) for a in row["answers"]]


def correct(text: str, expected: list[str], category: str) -> bool:
    if not expected:
        return bool(text.strip())
    lowered = text.lower()
    return any(e.lower() in lowered for e in expected)


class SearchHandler(BaseHTTPRequestHandler):
    """SearXNG's JSON API over the fictional pages: results by shared words / characters."""

    pages: ClassVar[list[dict[str, str]]] = []

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = parse_qs(parts.query).get("q", [""])[0].lower()
        terms = set(re.findall(r"[a-z0-9]+", query)) | set(re.findall(r"[\u4e00-\u9fff]", query))
        scored = []
        for i, page in enumerate(self.pages):
            text = (page["title"] + " " + page["content"]).lower()
            words = set(re.findall(r"[a-z0-9]+", text)) | set(re.findall(r"[\u4e00-\u9fff]", text))
            scored.append((len(terms & words), i, page))
        scored.sort(key=lambda item: (-item[0], item[1]))
        base = f"http://127.0.0.1:{self.server.server_address[1]}"
        results = [
            {"title": p["title"], "url": f"{base}/page/{i}", "content": p["content"]}
            for score, i, p in scored[:5]
            if score
        ]
        body = json.dumps({"query": query, "results": results}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        pass


def start_search_server() -> tuple[ThreadingHTTPServer, str]:
    SearchHandler.pages = json.loads((DATA / "web_pages.json").read_text())
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), SearchHandler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}"


def make_services(search_url: str, home: Path, threads: int | None) -> Services:
    overrides: dict[str, Any] = {
        "home": home,
        "web_search": {"providers": [{"kind": "searxng", "url": search_url}]},
    }
    settings = load_settings(**overrides)
    if threads:
        for model in settings.models.values():
            if model.backend == "llamacpp":
                model.threads = threads
    services = build(settings)
    if "lumo" not in services.library.names():
        services.library.create("lumo")
        services.library.get("lumo").add([DATA / "products.md", DATA / "sales.csv"])
    return services


def route_all(services: Services, rows: list[dict[str, Any]]) -> dict[str, Any]:
    library = services.library
    router = ExampleRouter(library.embedder(library.default_embedder_spec()))
    tools = build_tools(services.settings)
    confusion: Counter[str] = Counter()
    right = 0
    per_row = []
    started = time.perf_counter()
    for row in rows:
        context = ToolContext(services=services, kbs=("lumo",))
        plan = router.plan(row["question"], tools, kb_evidence(context, row["question"]))
        ok = plan == row["tools"]
        right += ok
        if not ok:
            confusion[f"{row['tools'] or ['none']} -> {plan or ['none']}"] += 1
        per_row.append({"id": row["id"], "plan": plan, "ok": ok})
    return {
        "tool_choice": round(right / len(rows), 4),
        "route_ms_mean": round((time.perf_counter() - started) * 1000 / len(rows), 2),
        "mistakes": dict(confusion.most_common()),
        "rows": per_row,
    }


def run_all(services: Services, rows: list[dict[str, Any]]) -> dict[str, Any]:
    results = []
    for row in rows:
        now = dt.datetime.now().astimezone()
        expected = expected_strings(row, now)
        record: dict[str, Any] = {"id": row["id"], "category": row["category"]}
        started = time.perf_counter()
        tools_called: list[str] = []
        steps: list[dict[str, Any]] = []
        format_errors = []
        answer: Answer | None = None
        try:
            for event in stream_agent(services, row["question"], kbs=["lumo"]):
                if isinstance(event, ToolStep) and event.done:
                    tools_called.append(event.tool)
                    steps.append(
                        {
                            "tool": event.tool,
                            "arguments": event.arguments,
                            "result": (event.result or "")[:300],
                            "error": event.error,
                        }
                    )
                    if event.error and FORMAT_ERRORS.search(event.error):
                        format_errors.append(event.error)
                elif isinstance(event, Answer):
                    answer = event
        except KbchatError as exc:
            format_errors.append(f"{type(exc).__name__}: {exc}")
        record["agent_s"] = round(time.perf_counter() - started, 2)
        record["tools"] = tools_called
        record["steps"] = steps
        record["tool_choice_ok"] = tools_called == row["tools"]
        record["format_errors"] = format_errors
        record["answer"] = answer.text if answer else ""
        record["correct"] = bool(answer) and correct(answer.text, expected, row["category"])
        started = time.perf_counter()
        plain = next(
            e for e in stream_chat(services.models.get(), row["question"]) if isinstance(e, Answer)
        )
        record["plain_s"] = round(time.perf_counter() - started, 2)
        record["plain_answer"] = plain.text
        record["plain_correct"] = correct(plain.text, expected, row["category"])
        results.append(record)
        mark = "ok" if record["correct"] else "--"
        print(
            f"{mark} {row['id']} tools={tools_called} {record['agent_s']}s "
            f"{record['answer'][:70]!r}",
            file=sys.stderr,
        )
    return summarise(results)


def summarise(results: list[dict[str, Any]]) -> dict[str, Any]:
    def share(key: str, rows: list[dict[str, Any]]) -> float:
        return round(sum(1 for r in rows if r[key]) / len(rows), 4) if rows else 0.0

    needing = [r for r in results if r["category"] != "none"]
    by_category = {
        category: {
            "n": len(rows),
            "tool_choice": share("tool_choice_ok", rows),
            "accuracy_agent": share("correct", rows),
            "accuracy_model_alone": share("plain_correct", rows),
        }
        for category in sorted({r["category"] for r in results})
        for rows in [[r for r in results if r["category"] == category]]
    }
    return {
        "questions": len(results),
        "format_errors": sum(len(r["format_errors"]) for r in results),
        "tool_choice": share("tool_choice_ok", results),
        "accuracy_agent": share("correct", results),
        "accuracy_model_alone": share("plain_correct", results),
        "accuracy_agent_needing_tools": share("correct", needing),
        "accuracy_model_alone_needing_tools": share("plain_correct", needing),
        "steps_mean": round(statistics.mean(len(r["tools"]) for r in results), 2),
        "added_seconds_median": round(
            statistics.median(r["agent_s"] - r["plain_s"] for r in results), 2
        ),
        "agent_seconds_median": round(statistics.median(r["agent_s"] for r in results), 2),
        "by_category": by_category,
        "rows": results,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", default="dev", choices=["dev", "test", "all"])
    parser.add_argument("--limit", type=int)
    parser.add_argument("--category", action="append", help="Only these categories.")
    parser.add_argument("--routing-only", action="store_true", help="Tool choice only, no LLM.")
    parser.add_argument("--threads", type=int, help="llama.cpp threads (1 on a busy machine).")
    parser.add_argument("--home", type=Path, default=BENCH / ".cache" / "agent-home")
    args = parser.parse_args(argv)
    rows = load_questions(args.split, args.limit, args.category)
    httpd, url = start_search_server()
    services = make_services(url, args.home, args.threads)
    try:
        report: dict[str, Any] = {
            "split": args.split,
            "model": services.settings.default_model,
            "embedder": services.library.default_embedder_spec(),
            "load_average": os.getloadavg(),
            "code": code_version(),
            "routing": route_all(services, rows),
        }
        if not args.routing_only:
            report["agent"] = run_all(services, rows)
    finally:
        services.close()
        httpd.shutdown()
    part = "-" + "-".join(args.category) if args.category else ""
    name = f"agent-{args.split}{part}{'-routing' if args.routing_only else ''}.json"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / name).write_text(json.dumps(report, ensure_ascii=False, indent=1) + "\n")
    summary = {k: v for k, v in report["routing"].items() if k != "rows"}
    print(json.dumps(summary, ensure_ascii=False, indent=1))
    if "agent" in report:
        print(json.dumps({k: v for k, v in report["agent"].items() if k != "rows"}, indent=1))


if __name__ == "__main__":
    main()
