"""Retrieval quality and latency: kbchat's default search against naive baselines.

Knowledge bases are built the way a user would build them: every passage is written to
``<id>.txt`` (title on the first line; cmrc2018 also without it) and the folder is added to a
knowledge base. They live in ``bench/.cache/`` under names keyed by data set, variant, pool,
embedder and chunking, so a re-run only hashes the files; chunk vectors already in any cached
KB of the same embedder are reused. Systems (top_k=10, hits deduplicated to passages):

- ``kbchat``: ``retrieve.search.search`` with default ``SearchOptions`` on a KB built with the
  default settings (embedder, chunk size and overlap); ``kbchat-t0``: the same with
  ``threshold=0`` (shows what the score threshold drops); ``kbchat-e5``: the same search on a
  KB built with e5 alone (the default before the composite e5+use embedder).
- ``dense-use`` / ``dense-e5``: dense only, no threshold, no near-duplicate removal, on KBs
  chunked 500/50 by *our* splitter (not LangChain's RecursiveCharacterTextSplitter; ours cuts
  at sentences, so this baseline is a little stronger than a fixed-character one).
- ``bm25``: BM25 only, same naive options, on the 500/50 USE KB (BM25 ignores the embedder).

Sets: hotpotqa_en (``distractor_dev`` subset = split dev, ``fullwiki_gold_in_pool`` = split
test), cmrc2018_zh with titles and text-only, and ``bench/data/crosslingual.jsonl`` (zh->en
questions on the hotpotqa KB, en->zh on the cmrc2018 KB; 30 dev + 30 test each way). The
``mixed-*`` sets ask the same questions of the hotpotqa and cmrc2018 KBs at once (multi-KB
search), as a user with Chinese and English files side by side would. Questions: the first
``--max-queries`` of a seeded shuffle per set and split. Tune on dev, report test.

Pools: embedding a whole corpus with e5 on two shared cores takes hours, so by default a KB
holds every gold passage of the chosen questions (for hotpotqa with the 3 passages either side
of it: that corpus keeps a question's distractor paragraphs next to its gold ones) plus seeded
random other passages up to ``--hotpotqa-pool`` / ``--cmrc-pool`` passages (0 = the whole
corpus). Fewer distractors make retrieval easier than on the full corpus: compare systems,
not absolute numbers across pools.

Latency: default search on KBs of 20k and 100k chunks whose text is real crud_news (split with
the default chunking, tokenised for BM25, cycled through the corpus until the count is
reached) but whose vectors are *random unit vectors* written straight into the catalog.
Query embedding is real and reported on its own.

Usage::

    .venv/bin/python bench/retrieval.py                       # everything (cached after once)
    .venv/bin/python bench/retrieval.py --quick               # small smoke run
    .venv/bin/python bench/retrieval.py --systems kbchat --sets cmrc-titled --splits dev
    .venv/bin/python bench/retrieval.py --build-only          # only build the cached KBs
    .venv/bin/python bench/retrieval.py --hotpotqa-pool 0 --cmrc-pool 0 --max-queries 300 \
        --out bench/results/retrieval-full.json               # whole corpora (hours with e5)
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import platform
import random
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select

from kbchat.config import load_settings
from kbchat.embed.base import Embedder, Vectors
from kbchat.embed.composite import CompositeEmbedder
from kbchat.eval.retrieval import EvalQuery, evaluate_retrieval, load_queries
from kbchat.ingest.splitter import split_documents
from kbchat.kb.knowledge_base import FileOutcome, IngestListener, KnowledgeBase, chunk_id
from kbchat.kb.library import Library
from kbchat.runtime import configure_process
from kbchat.store.bm25 import tokenize
from kbchat.store.catalog import NewChunk
from kbchat.store.catalog import chunks as chunk_table
from kbchat.store.catalog import kbs as kb_table
from kbchat.types import Chunk, Document, Hit

BENCH = Path(__file__).resolve().parent
EVAL_DIR = Path(os.environ.get("KBCHAT_EVAL_DIR", "/work/shared/eval/dev"))
CACHE = BENCH / ".cache"
CROSSLINGUAL = BENCH / "data" / "crosslingual.jsonl"
TOP_K = 10
NEIGHBOURS = {"hotpotqa_en": 3}


@dataclass(frozen=True)
class EvalSet:
    """Questions asked of one corpus variant; ``keep`` selects them from the file."""

    name: str
    dataset: str
    variant: str
    queries: Path
    keep: Callable[[EvalQuery], bool]
    also: str | None = None  # another data set whose (titled) KB is searched as well


@dataclass(frozen=True)
class System:
    """A retrieval configuration: SearchOptions overrides, on which KB build."""

    name: str
    options: dict[str, Any]  # overrides of the default SearchOptions (unknown ones ignored)
    embedder: str | None  # None: the configured default
    chunking: tuple[int, int] | None  # None: the configured default


def _has(name: str, value: str) -> Callable[[EvalQuery], bool]:
    return lambda query: query.extra.get(name) == value


HOTPOTQA = EVAL_DIR / "hotpotqa_en" / "queries.jsonl"
CMRC = EVAL_DIR / "cmrc2018_zh" / "queries.jsonl"
SETS = [
    EvalSet(
        "hotpotqa-distractor", "hotpotqa_en", "titled", HOTPOTQA, _has("subset", "distractor_dev")
    ),
    EvalSet(
        "hotpotqa-fullwiki",
        "hotpotqa_en",
        "titled",
        HOTPOTQA,
        _has("subset", "fullwiki_gold_in_pool"),
    ),
    EvalSet("cmrc-titled", "cmrc2018_zh", "titled", CMRC, lambda query: True),
    EvalSet("cmrc-text", "cmrc2018_zh", "text", CMRC, lambda query: True),
    EvalSet("cross-zh-en", "hotpotqa_en", "titled", CROSSLINGUAL, _has("direction", "zh->en")),
    EvalSet("cross-en-zh", "cmrc2018_zh", "titled", CROSSLINGUAL, _has("direction", "en->zh")),
]
# Users keep Chinese and English files side by side: the same questions, asked of both KBs.
_OTHER = {"hotpotqa_en": "cmrc2018_zh", "cmrc2018_zh": "hotpotqa_en"}
SETS += [
    dataclasses.replace(s, name=f"mixed-{s.name}", also=_OTHER[s.dataset])
    for s in SETS
    if s.name in ("hotpotqa-distractor", "cmrc-titled", "cross-zh-en", "cross-en-zh")
]
NAIVE = {"threshold": 0.0, "dedupe": False}
SYSTEMS = [
    System("kbchat", {}, None, None),
    System("kbchat-t0", {"threshold": 0.0}, None, None),
    System("kbchat-samelang0", {"language_margin": 0.0}, None, None),
    System("kbchat-e5", {}, "e5", None),
    System("bm25", {"mode": "bm25", **NAIVE}, "use", (500, 50)),
    System("dense-use", {"mode": "dense", **NAIVE}, "use", (500, 50)),
    System("dense-e5", {"mode": "dense", **NAIVE}, "e5", (500, 50)),
]


# -- embedding memo: chunks shared between KB builds are embedded once ----------------------


class MemoEmbedder:
    """Wraps an embedder; passage vectors already in the catalog are reused by text."""

    def __init__(self, inner: Embedder, known: dict[str, np.ndarray]) -> None:
        self.inner, self.name, self.dim, self.memo = inner, inner.name, inner.dim, known

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self.inner, attribute)  # e.g. score_width, read by retrieval

    def embed_batch(self, texts: Sequence[str], *, is_query: bool = False) -> Vectors:
        if is_query:
            return self.inner.embed_batch(texts, is_query=True)
        missing = list(dict.fromkeys(t for t in texts if t not in self.memo))
        if missing:
            self.memo.update(zip(missing, self.inner.embed_batch(missing), strict=True))
        return np.vstack([self.memo[t] for t in texts]).astype(np.float32)


class BenchLibrary(Library):
    """A Library whose embedders reuse the vectors of every KB it built with the same model."""

    def embedder(self, spec: dict[str, Any]) -> Embedder:
        inner = super().embedder(spec)
        memos: dict[str, Embedder] = self.__dict__.setdefault("_memos", {})
        if inner.name not in memos:
            if isinstance(inner, CompositeEmbedder):  # memoise each part on its own
                memos[inner.name] = CompositeEmbedder([self._memo(p) for p in inner.parts])
            else:
                memos[inner.name] = self._memo(inner)
        return memos[inner.name]

    def _memo(self, inner: Embedder) -> Embedder:
        memos: dict[str, Embedder] = self.__dict__.setdefault("_memos", {})
        if inner.name not in memos:
            memos[inner.name] = MemoEmbedder(inner, self._stored_vectors(inner.name))
        return memos[inner.name]

    def _stored_vectors(self, embedder_name: str) -> dict[str, np.ndarray]:
        query = (
            select(chunk_table.c.text, chunk_table.c.vector)
            .join(kb_table, kb_table.c.id == chunk_table.c.kb_id)
            .where(kb_table.c.embedder == embedder_name, ~kb_table.c.name.startswith("latency-"))
        )
        with self.catalog.engine.connect() as conn:
            return {
                text: np.frombuffer(blob, dtype=np.float32) for text, blob in conn.execute(query)
            }


# -- corpora and knowledge bases ------------------------------------------------------------


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def select_queries(eval_set: EvalSet, split: str, limit: int, seed: int) -> list[EvalQuery]:
    """The set's questions of one split: the first ``limit`` of a seeded shuffle.

    A smaller limit takes a subset of a larger one's questions, so runs share their KBs.
    """
    if not eval_set.queries.exists():
        return []
    queries = [q for q in load_queries(eval_set.queries, split=split) if eval_set.keep(q)]
    order = list(range(len(queries)))
    name = eval_set.name.removeprefix("mixed-")  # a mixed set asks its base set's questions
    random.Random(f"{seed}-{name}-{split}").shuffle(order)
    chosen = set(order[:limit])
    return [q for i, q in enumerate(queries) if i in chosen]


def pool_ids(dataset: str, pool: int | None, limit: int, seed: int) -> list[str]:
    """Passages of a data set's KB: all, or the sampled gold ones, their hard distractors and
    seeded random others up to ``pool``.

    hotpotqa's corpus keeps each question's paragraphs together (gold and distractors), so the
    ``NEIGHBOURS`` passages either side of a gold one join the pool as its hard distractors.
    """
    corpus = [str(row["id"]) for row in read_jsonl(EVAL_DIR / dataset / "corpus.jsonl")]
    if pool is None or pool >= len(corpus):
        return corpus
    position = {pid: i for i, pid in enumerate(corpus)}
    reach = NEIGHBOURS.get(dataset, 0)
    gold = {
        corpus[i]
        for s in SETS
        if s.dataset == dataset
        for split in ("dev", "test")
        for q in select_queries(s, split, limit, seed)
        for g in q.gold_ids
        if g in position
        for i in range(max(0, position[g] - reach), min(len(corpus), position[g] + reach + 1))
    }
    shuffled = list(corpus)
    random.Random(f"{seed}-{dataset}-pool").shuffle(shuffled)
    others = [pid for pid in shuffled if pid not in gold]
    chosen = gold | set(others[: max(0, pool - len(gold))])
    return [pid for pid in corpus if pid in chosen]


def pool_tag(ids: Sequence[str], full: bool) -> str:
    """Names a pool by its size and content, so a different pool never reuses a KB."""
    if full:
        return "full"
    digest = hashlib.blake2b("\n".join(ids).encode(), digest_size=3).hexdigest()
    return f"p{len(ids)}{digest}"


def write_passages(dataset: str, variant: str, ids: Sequence[str], tag: str) -> Path:
    """Write each passage to ``<id>.txt`` once; return the folder."""
    folder = CACHE / "passages" / f"{dataset}-{variant}-{tag}"
    done = folder / ".complete"
    if done.exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    wanted = set(ids)
    for row in read_jsonl(EVAL_DIR / dataset / "corpus.jsonl"):
        if row["id"] in wanted:
            text = f"{row['title']}\n{row['text']}" if variant == "titled" else row["text"]
            (folder / f"{row['id']}.txt").write_text(text + "\n", encoding="utf-8")
    done.touch()
    return folder


class Progress(IngestListener):
    """Prints ingest progress to stderr every few hundred files."""

    def __init__(self, name: str) -> None:
        self.name, self.total, self.done, self.started_at = name, 0, 0, time.perf_counter()

    def started(self, total: int) -> None:
        self.total = total

    def file_done(self, outcome: FileOutcome) -> None:
        self.done += 1
        if outcome.status == "failed":
            print(f"  failed: {outcome.error}", file=sys.stderr)
        if self.done % 250 == 0 or self.done == self.total:
            rate = self.done / (time.perf_counter() - self.started_at)
            print(f"  {self.name}: {self.done}/{self.total} files ({rate:.1f}/s)", file=sys.stderr)


def ensure_kb(
    library: BenchLibrary, dataset: str, variant: str, system: System, ids: Sequence[str], tag: str
) -> KnowledgeBase:
    """Open (building or topping up if needed) the KB one system searches for one corpus."""
    ingest = library.settings.ingest
    embedder = system.embedder or library.settings.embedder.backend
    size, overlap = system.chunking or (ingest.chunk_size, ingest.chunk_overlap)
    name = f"{dataset}-{variant}-{tag}-{embedder.replace('+', '_')}-{size}-{overlap}"
    kb = library.ensure(name, embedder=embedder, chunk_size=size, chunk_overlap=overlap)
    folder = write_passages(dataset, variant, ids, tag)
    marker = kb.directory / "bench-complete"
    if not marker.exists():
        print(f"building {name} ...", file=sys.stderr)
        outcomes = kb.add([folder], exclude=ingest.exclude, listener=Progress(name))
        if not any(o.status == "failed" for o in outcomes):
            marker.touch()
    return kb


# -- evaluation -----------------------------------------------------------------------------


def searcher(
    kbs: Sequence[KnowledgeBase], overrides: dict[str, Any], top_k: int
) -> Callable[[str], list[Hit]]:
    """``search`` with default SearchOptions but for ``top_k`` and the system's overrides."""
    from kbchat.retrieve.search import SearchOptions, search

    known = {f.name for f in dataclasses.fields(SearchOptions)}
    options = SearchOptions(top_k=top_k, **{k: v for k, v in overrides.items() if k in known})
    return lambda question: search(kbs, question, options)


def run_quality(args: argparse.Namespace, library: BenchLibrary) -> list[dict[str, Any]]:
    """Evaluate each chosen system on each chosen set and split (systems outermost)."""
    pools = {
        dataset: pool_ids(dataset, size, args.max_queries, args.seed)
        for dataset, size in args.pool.items()
    }
    tags = {d: pool_tag(ids, args.pool[d] is None) for d, ids in pools.items()}
    results = []
    for system in (s for s in SYSTEMS if s.name in args.systems):
        for eval_set in (s for s in SETS if s.name in args.sets):
            ids = pools[eval_set.dataset]
            kb = ensure_kb(
                library, eval_set.dataset, eval_set.variant, system, ids, tags[eval_set.dataset]
            )
            kbs = [kb]
            if eval_set.also is not None:
                other = eval_set.also
                kbs.append(ensure_kb(library, other, "titled", system, pools[other], tags[other]))
            if args.build_only:
                continue
            search = searcher(kbs, system.options, TOP_K)
            for split in args.splits:
                queries = select_queries(eval_set, split, args.max_queries, args.seed)
                if not queries:
                    continue
                search(queries[0].question)  # load models and indexes outside the timings
                report = evaluate_retrieval(search, queries, top_k=TOP_K, split=split)
                row = {
                    "system": system.name,
                    "set": eval_set.name,
                    "split": split,
                    "kb": kb.name,
                    "kb_chunks": kb.stats().get("chunks", 0),
                    "passages": len(ids),
                    **report.summary(),
                }
                print(json.dumps(row, ensure_ascii=False), file=sys.stderr, flush=True)
                results.append(row)
    return results


# -- latency at scale -----------------------------------------------------------------------


def news_chunks(size: int, overlap: int) -> list[Chunk]:
    """Every crud_news article (title + text) split with the given chunking."""
    documents = []
    for row in read_jsonl(EVAL_DIR / "crud_news_zh_docs" / "corpus.jsonl"):
        text = f"{row['title']}\n{row['text']}" if row.get("title") else row["text"]
        documents.append(Document(text=text, source=f"{row['id']}.txt"))
    return split_documents(documents, chunk_size=size, chunk_overlap=overlap)


def build_latency_kb(library: BenchLibrary, target: int) -> KnowledgeBase:
    """A KB of ``target`` real-text chunks with random vectors (see the module docstring).

    Chunks are grouped 200 to a synthetic file so the catalog takes few transactions.
    """
    ingest = library.settings.ingest
    backend = library.settings.embedder.backend.replace("+", "_")
    kb = library.ensure(
        f"latency-{target}-{backend}",
        chunk_size=ingest.chunk_size,
        chunk_overlap=ingest.chunk_overlap,
    )
    marker = kb.directory / "bench-complete"
    if marker.exists():
        return kb
    print(f"building {kb.name} (random vectors) ...", file=sys.stderr)
    pool = news_chunks(ingest.chunk_size, ingest.chunk_overlap)
    rng = np.random.default_rng(target)
    per_file = 200
    for start in range(0, target, per_file):
        name = f"news-{start // per_file:05d}.txt"
        texts = [pool[i % len(pool)].text for i in range(start, min(start + per_file, target))]
        vectors = rng.standard_normal((len(texts), kb.record.dim)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        new = [
            NewChunk(
                id=chunk_id(kb.name, name, position, text),
                chunk=Chunk(text=text, source=name, position=position),
                tokens=tokenize(text),
                vector=vector,
            )
            for position, (text, vector) in enumerate(zip(texts, vectors, strict=True))
        ]
        kb.catalog.replace_file_chunks(
            kb.record.id, name, path=f"synthetic/{name}", sha256="", size=0, new_chunks=new
        )
    kb.index.persist()
    marker.touch()
    return kb


def run_latency(args: argparse.Namespace, library: BenchLibrary) -> list[dict[str, Any]]:
    """p50/p95 of default search (and of query embedding alone) on each big KB."""
    from kbchat.retrieve.search import SearchOptions, search

    half = args.latency_queries // 2
    questions = [
        q.question
        for name in ("cmrc2018_zh", "hotpotqa_en")
        for q in load_queries(EVAL_DIR / name / "queries.jsonl", limit=half)
    ]
    rows = []
    for target in args.latency_sizes:
        kb = build_latency_kb(library, target)
        started = time.perf_counter()
        search([kb], questions[0], SearchOptions())
        cold_ms = (time.perf_counter() - started) * 1000
        total, embed = [], []
        for question in questions:
            started = time.perf_counter()
            search([kb], question, SearchOptions())
            total.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            kb.embedder.embed_batch([question], is_query=True)
            embed.append((time.perf_counter() - started) * 1000)
        row = {
            "kb": kb.name,
            "chunks": kb.stats().get("chunks", 0),
            "queries": len(questions),
            "vectors": "random unit vectors; text and BM25 tokens real (crud_news, cycled)",
            "first_query_ms": round(cold_ms, 1),
            "p50_ms": round(float(np.percentile(total, 50)), 2),
            "p95_ms": round(float(np.percentile(total, 95)), 2),
            "query_embed_p50_ms": round(float(np.percentile(embed, 50)), 2),
        }
        print(json.dumps(row, ensure_ascii=False), file=sys.stderr, flush=True)
        rows.append(row)
    return rows


# -- output ---------------------------------------------------------------------------------


def merge(
    out: Path,
    quality: list[dict[str, Any]],
    latency: list[dict[str, Any]],
    settings: dict[str, Any],
) -> dict[str, Any]:
    """Merge this run into ``out`` (rows keyed by system/set/split and by latency KB)."""
    old = json.loads(out.read_text()) if out.exists() else {}
    rows = {(r["system"], r["set"], r["split"]): r for r in old.get("quality", [])}
    rows.update({(r["system"], r["set"], r["split"]): r for r in quality})
    sizes = {r["kb"]: r for r in old.get("latency", [])}
    sizes.update({r["kb"]: r for r in latency})
    merged = {
        "settings": settings,
        "quality": sorted(rows.values(), key=lambda r: (r["set"], r["split"], r["system"])),
        "latency": sorted(sizes.values(), key=lambda r: r["chunks"]),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(merged, ensure_ascii=False, indent=1) + "\n")
    return merged


def table(merged: dict[str, Any]) -> str:
    """Markdown tables: quality (one row per set, split and system) and latency."""
    lines = [
        "| set | split | n | system | R@5 | MRR@10 | nDCG@10 | p50 ms | p95 ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in merged["quality"]:
        m = r["metrics"]
        lines.append(
            f"| {r['set']} | {r['split']} | {r['queries']} | {r['system']} | "
            f"{100 * m['recall@5']:.1f} | {100 * m['mrr@10']:.1f} | {100 * m['ndcg@10']:.1f} | "
            f"{r['latency_ms']['p50']:.1f} | {r['latency_ms']['p95']:.1f} |"
        )
    if merged["latency"]:
        lines += [
            "",
            "| KB | chunks | first query ms | p50 ms | p95 ms | embed p50 ms |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['kb']} | {r['chunks']} | {r['first_query_ms']} | {r['p50_ms']} | "
            f"{r['p95_ms']} | {r.get('query_embed_p50_ms', '')} |"
            for r in merged["latency"]
        ]
    return "\n".join(lines)


def code_version() -> dict[str, Any]:
    """The commit measured, and which kbchat files differed from it (retrieval moves fast)."""

    def git(*args: str) -> str:
        result = subprocess.run(["git", *args], cwd=BENCH, capture_output=True, text=True)
        return result.stdout.rstrip()

    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "uncommitted": git("status", "--porcelain", "--", "../kbchat").splitlines(),
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--systems", nargs="+", default=[s.name for s in SYSTEMS], choices=[s.name for s in SYSTEMS]
    )
    parser.add_argument(
        "--sets", nargs="+", default=[s.name for s in SETS], choices=[s.name for s in SETS]
    )
    parser.add_argument("--splits", nargs="+", default=["dev", "test"], choices=["dev", "test"])
    parser.add_argument("--max-queries", type=int, default=100, help="per set and split")
    parser.add_argument(
        "--hotpotqa-pool",
        type=int,
        default=2100,
        help="passages in the hotpotqa KB: every sampled gold one + random others; 0 = all",
    )
    parser.add_argument("--cmrc-pool", type=int, default=400, help="same for cmrc2018; 0 = all")
    parser.add_argument("--latency-sizes", nargs="*", type=int, default=[20_000, 100_000])
    parser.add_argument("--latency-queries", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--build-only", action="store_true", help="build the KBs, evaluate nothing")
    parser.add_argument(
        "--quick", action="store_true", help="small pools, 20 queries, 2k-chunk latency KB"
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.quick:
        args.max_queries, args.hotpotqa_pool, args.cmrc_pool = 20, 300, 200
        args.latency_sizes, args.latency_queries = [2000], 20
    args.pool = {"hotpotqa_en": args.hotpotqa_pool or None, "cmrc2018_zh": args.cmrc_pool or None}
    default_out = "retrieval-quick.json" if args.quick else "retrieval.json"
    args.out = args.out or BENCH / "results" / default_out
    return args


def main() -> None:
    configure_process()  # what the CLI and server set: OpenMP policy, FAISS threads
    args = parse_args()
    settings = load_settings(home=CACHE / "home")
    library = BenchLibrary(settings)
    started = time.perf_counter()
    try:
        quality = run_quality(args, library)
        if args.build_only:
            for target in args.latency_sizes:
                build_latency_kb(library, target)
            return
        latency = run_latency(args, library) if args.latency_sizes else []
    finally:
        library.close()
    run_settings = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "default_embedder": settings.embedder.backend,
        "default_chunking": [settings.ingest.chunk_size, settings.ingest.chunk_overlap],
        "max_queries": args.max_queries,
        "top_k": TOP_K,
        "seed": args.seed,
        "pools": args.pool,
        "seconds": round(time.perf_counter() - started, 1),
        "metrics": "fractions in [0, 1]; hits deduplicated to passages (file stem)",
        "code": code_version(),
    }
    print(table(merge(args.out, quality, latency, run_settings)))


if __name__ == "__main__":
    main()
