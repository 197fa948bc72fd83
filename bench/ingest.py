"""Ingest benchmark: whole pipeline vs the embedder alone, and the unchanged re-add.

Usage: python bench/ingest.py [--articles 2000] [--embedder e5] [--out bench/results/ingest.json]

Writes one JSON document per run with, for each data set: files/s, chunks/s, peak RSS, the
embedder-alone chunks/s on the very same chunk texts, their ratio, and the time to re-add the
unchanged folder as a fraction of the first run.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from kbchat.config import load_settings
from kbchat.embed.base import embed_texts
from kbchat.kb.knowledge_base import IngestListener
from kbchat.kb.library import Library
from kbchat.runtime import configure_process
from kbchat.store.catalog import chunks as chunk_table

EVAL = Path(__file__).resolve().parents[2] / "shared" / "eval" / "dev"


def write_news(dest: Path, count: int) -> Path:
    folder = dest / "crud_news"
    folder.mkdir(parents=True)
    with (EVAL / "crud_news_zh_docs" / "corpus.jsonl").open(encoding="utf-8") as corpus:
        for n, line in enumerate(corpus):
            if n >= count:
                break
            row = json.loads(line)
            text = f"{row['title']}\n{row['text']}" if row.get("title") else row["text"]
            (folder / f"{row['id']}.txt").write_text(text, encoding="utf-8")
    return folder


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_set(library: Library, name: str, folder: Path) -> dict[str, Any]:
    kb = library.ensure(name)
    start = time.perf_counter()
    outcomes = kb.add([folder], listener=IngestListener())
    first_s = time.perf_counter() - start
    indexed = [o for o in outcomes if o.status == "indexed"]
    chunk_count = sum(o.chunks for o in indexed)

    start = time.perf_counter()
    again = kb.add([folder])
    readd_s = time.perf_counter() - start

    with library.catalog.engine.connect() as conn:
        texts = list(
            conn.execute(
                chunk_table.select()
                .with_only_columns(chunk_table.c.text)
                .where(chunk_table.c.kb_id == kb.record.id)
            ).scalars()
        )
    start = time.perf_counter()
    embed_texts(kb.embedder, texts, batch_size=library.settings.embedder.batch_size)
    embed_s = time.perf_counter() - start

    pipeline_cps = chunk_count / first_s
    embed_cps = len(texts) / embed_s
    return {
        "files": len(outcomes),
        "indexed": len(indexed),
        "failed": {o.name: o.error for o in outcomes if o.status == "failed"},
        "skipped": sum(o.status == "skipped" for o in outcomes),
        "chunks": chunk_count,
        "first_run_s": round(first_s, 2),
        "files_per_s": round(len(outcomes) / first_s, 2),
        "chunks_per_s": round(pipeline_cps, 2),
        "embedder_alone_chunks_per_s": round(embed_cps, 2),
        "pipeline_vs_embedder": round(pipeline_cps / embed_cps, 3),
        "readd_unchanged_s": round(readd_s, 3),
        "readd_fraction_of_first": round(readd_s / first_s, 4),
        "readd_all_unchanged": all(o.status in ("unchanged", "skipped", "failed") for o in again),
        "peak_rss_mb_so_far": round(peak_rss_mb(), 1),
    }


def main() -> None:
    configure_process()  # what the CLI and server set: OpenMP policy, FAISS threads
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--articles", type=int, default=2000)
    parser.add_argument("--embedder", default=None, help="embedder backend (default: configured)")
    parser.add_argument("--sets", default="news,chatchat")
    parser.add_argument("--out", type=Path, default=Path("bench/results/ingest.json"))
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="kbchat-bench-"))
    try:
        overrides: dict[str, Any] = {"home": work / "home"}
        if args.embedder:
            overrides["embedder"] = {"backend": args.embedder}
        library = Library(load_settings(**overrides))
        spec = library.default_embedder_spec()
        library.embedder(spec).embed_batch(["warm-up 预热"])  # model load is not ingest time
        results: dict[str, Any] = {
            "benchmark": "ingest",
            "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version()},
            "embedder": library.embedder(spec).name,
            "sets": {},
        }
        wanted = args.sets.split(",")
        if "news" in wanted:
            results["sets"]["crud_news_zh"] = run_set(
                library, "news", write_news(work, args.articles)
            )
            print(json.dumps(results["sets"]["crud_news_zh"], ensure_ascii=False), file=sys.stderr)
        if "chatchat" in wanted:
            results["sets"]["chatchat_samples"] = run_set(
                library, "chatchat", EVAL / "chatchat_samples"
            )
        results["peak_rss_mb"] = round(peak_rss_mb(), 1)
        library.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n")
    print(json.dumps(results, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
