"""Retrieval evaluation: Recall@k, MRR@10 and nDCG@10 of a search function over a question set.

A question set is a JSONL file, one question a line::

    {"id": "q1", "question": "...", "answers": ["..."], "answers_required": [["..."]],
     "gold_doc_ids": ["doc-7"], "split": "dev"}
    {"id": "q2", "question": "...", "answerable": false, "split": "dev"}

A question is unanswerable (the right response is to decline) when ``answerable`` is false or
it has no ``answers`` and no ``answers_required``; ``gold_doc_ids`` may then be left out.

A hit matches a gold id when the stem of its source file equals the id (``doc-7.txt`` is
passage ``doc-7``). Several chunks of one passage count once, at the rank of the best one.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kbchat.errors import BadInput
from kbchat.types import Hit

log = logging.getLogger(__name__)

METRICS = ("recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10")
_REQUIRED = ("id", "question", "gold_doc_ids")


@dataclass(frozen=True, slots=True)
class EvalQuery:
    """One question of a set, with the passages that answer it."""

    id: str
    question: str
    gold_ids: tuple[str, ...]
    split: str | None = None
    answers: tuple[str, ...] = ()
    answers_required: tuple[tuple[str, ...], ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)
    answerable: bool = True

    @property
    def required_groups(self) -> tuple[tuple[str, ...], ...]:
        """What a correct answer must contain: ``answers_required``, else any of ``answers``."""
        if self.answers_required:
            return self.answers_required
        return (self.answers,) if self.answers else ()


@dataclass(frozen=True, slots=True)
class RankedPassage:
    """A passage (file stem) in a result list, scored by its best chunk."""

    stem: str
    score: float


@dataclass(frozen=True, slots=True)
class QueryResult:
    """What one question retrieved and how it scored."""

    id: str
    question: str
    gold_ids: tuple[str, ...]
    retrieved: tuple[RankedPassage, ...]
    first_gold_rank: int | None
    latency_ms: float
    metrics: dict[str, float]


@dataclass(frozen=True, slots=True)
class RetrievalReport:
    """Mean metrics (fractions in [0, 1]) and per-question details of one evaluation run."""

    queries: int
    top_k: int
    split: str | None
    metrics: dict[str, float]
    latency_p50_ms: float
    latency_p95_ms: float
    details: tuple[QueryResult, ...]
    skipped_no_gold: int = 0

    def summary(self) -> dict[str, Any]:
        """Metrics and latency as a JSON-ready dict (no per-question details)."""
        return {
            "queries": self.queries,
            "top_k": self.top_k,
            "split": self.split,
            "skipped_no_gold": self.skipped_no_gold,
            "metrics": {name: round(value, 4) for name, value in self.metrics.items()},
            "latency_ms": {
                "p50": round(self.latency_p50_ms, 2),
                "p95": round(self.latency_p95_ms, 2),
            },
        }

    def to_json(self) -> dict[str, Any]:
        """Summary plus every question's retrieved passages, as a JSON-ready dict."""
        value = self.summary()
        value["details"] = [
            {
                "id": d.id,
                "question": d.question,
                "gold_ids": list(d.gold_ids),
                "retrieved": [{"id": p.stem, "score": round(p.score, 4)} for p in d.retrieved],
                "first_gold_rank": d.first_gold_rank,
                "latency_ms": round(d.latency_ms, 2),
                "metrics": {name: round(v, 4) for name, v in d.metrics.items()},
            }
            for d in self.details
        ]
        return value


def load_queries(
    path: Path, *, split: str | None = None, limit: int | None = None
) -> list[EvalQuery]:
    """Read a question set in the shared JSONL schema.

    Args:
        path: the JSONL file.
        split: keep only questions whose ``split`` equals this.
        limit: keep at most this many questions (after the split filter), in file order.

    Returns:
        The questions, in file order; lines marked ``"needs_reference": true`` (answers
        rated down, see ``kbchat.eval.feedback``) are left out with a logged warning.

    Raises:
        BadInput: the file cannot be read, or a line is not a JSON object with a string
            ``id`` and ``question`` and a list of string ``gold_doc_ids`` (the message names
            the file and line).
    """
    if limit is not None and limit <= 0:
        raise BadInput(f"limit must be > 0, got {limit}")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path}: cannot read question set: {exc}") from None
    queries: list[EvalQuery] = []
    skipped = 0
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        query = parse_query(line, where=f"{path}:{number}")
        if query.extra.get("needs_reference") is True:
            skipped += 1
            continue
        if split is not None and query.split != split:
            continue
        queries.append(query)
        if limit is not None and len(queries) >= limit:
            break
    if skipped:
        log.warning(
            "%s: skipped %d question(s) marked needs_reference (rated down in the page; "
            "write their answers and remove the flag to measure them)",
            path,
            skipped,
        )
    return queries


def parse_query(line: str, *, where: str = "<input>") -> EvalQuery:
    """Parse one JSONL line; ``where`` (file:line) prefixes any error message."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise BadInput(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(row, dict):
        raise BadInput(f"{where}: expected a JSON object, got {type(row).__name__}")
    answerable = row.get("answerable")
    if answerable is not None and not isinstance(answerable, bool):
        raise BadInput(f"{where}: 'answerable' must be true or false")
    required_fields = _REQUIRED if answerable is not False else _REQUIRED[:2]
    missing = [name for name in required_fields if name not in row]
    if missing:
        raise BadInput(f"{where}: missing field(s) {', '.join(missing)}")
    if not isinstance(row["id"], str | int) or not isinstance(row["question"], str):
        raise BadInput(f"{where}: 'id' and 'question' must be strings")
    if not row["question"].strip():
        raise BadInput(f"{where}: 'question' is empty")
    gold = row.get("gold_doc_ids", [])
    if not isinstance(gold, list) or not all(isinstance(g, str) for g in gold):
        raise BadInput(f"{where}: 'gold_doc_ids' must be a list of strings")
    answers = row.get("answers", [])
    required = row.get("answers_required", [])
    if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
        raise BadInput(f"{where}: 'answers' must be a list of strings")
    if not isinstance(required, list) or not all(
        isinstance(group, list) and all(isinstance(a, str) for a in group) for group in required
    ):
        raise BadInput(f"{where}: 'answers_required' must be a list of lists of strings")
    split = row.get("split")
    if split is not None and not isinstance(split, str):
        raise BadInput(f"{where}: 'split' must be a string")
    if answerable is None:
        answerable = bool(answers or required)
    elif answerable and not (answers or required):
        raise BadInput(f"{where}: an answerable question needs 'answers' or 'answers_required'")
    known = {*_REQUIRED, "answers", "answers_required", "split", "answerable"}
    return EvalQuery(
        id=str(row["id"]),
        question=row["question"],
        gold_ids=tuple(dict.fromkeys(gold)),
        split=split,
        answers=tuple(answers),
        answers_required=tuple(tuple(group) for group in required),
        extra={key: value for key, value in row.items() if key not in known},
        answerable=answerable,
    )


def rank_passages(hits: Iterable[Hit]) -> list[RankedPassage]:
    """Map hits to their source file stems, keeping each stem once at its best rank."""
    best: dict[str, RankedPassage] = {}
    for hit in hits:
        stem = Path(hit.file).stem
        if stem not in best:
            best[stem] = RankedPassage(stem=stem, score=hit.score)
    return list(best.values())


def score_ranking(ranked: Sequence[str], gold: Iterable[str]) -> dict[str, float]:
    """Recall@1/5/10, MRR@10 and nDCG@10 (binary relevance) of one ranked list of ids.

    Args:
        ranked: passage ids, best first, each at most once.
        gold: the relevant ids; must not be empty.

    Returns:
        A value in [0, 1] for each name in ``METRICS``.
    """
    relevant = set(gold)
    if not relevant:
        raise ValueError("gold must not be empty")
    flags = [stem in relevant for stem in ranked[:10]]
    scores = {f"recall@{k}": sum(flags[:k]) / len(relevant) for k in (1, 5, 10)}
    first = next((rank for rank, hit in enumerate(flags, 1) if hit), None)
    scores["mrr@10"] = 1.0 / first if first else 0.0
    dcg = sum(1.0 / math.log2(rank + 1) for rank, hit in enumerate(flags, 1) if hit)
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(len(relevant), 10) + 1))
    scores["ndcg@10"] = dcg / ideal
    return scores


def evaluate_retrieval(
    search_fn: Callable[[str], list[Hit]],
    queries: Iterable[EvalQuery],
    *,
    top_k: int = 10,
    split: str | None = None,
    on_query: Callable[[QueryResult], None] | None = None,
) -> RetrievalReport:
    """Run every question through ``search_fn`` and score what it returns.

    Hits are mapped to passages by file stem and deduplicated (best rank kept), then cut to
    ``top_k`` passages. Questions without gold ids cannot be scored and are counted in
    ``skipped_no_gold``.

    Args:
        search_fn: question -> hits, best first (ask it for at least ``top_k`` hits).
        queries: the questions.
        top_k: passages kept per question (the metrics look at the first 10 at most).
        split: evaluate only questions of this split.
        on_query: called after each question (progress reporting).

    Returns:
        Mean metrics, latency percentiles of ``search_fn`` and per-question details.

    Raises:
        BadInput: ``top_k`` is not positive, or no question is left to evaluate.
    """
    if top_k <= 0:
        raise BadInput(f"top_k must be > 0, got {top_k}")
    details: list[QueryResult] = []
    skipped = 0
    for query in queries:
        if split is not None and query.split != split:
            continue
        if not query.gold_ids:
            skipped += 1
            continue
        details.append(_evaluate_one(search_fn, query, top_k))
        if on_query is not None:
            on_query(details[-1])
    if not details:
        where = f" of split {split!r}" if split is not None else ""
        raise BadInput(f"no questions{where} with gold_doc_ids to evaluate")
    latencies = np.asarray([d.latency_ms for d in details], dtype=np.float64)
    return RetrievalReport(
        queries=len(details),
        top_k=top_k,
        split=split,
        metrics={name: float(np.mean([d.metrics[name] for d in details])) for name in METRICS},
        latency_p50_ms=float(np.percentile(latencies, 50)),
        latency_p95_ms=float(np.percentile(latencies, 95)),
        details=tuple(details),
        skipped_no_gold=skipped,
    )


def _evaluate_one(
    search_fn: Callable[[str], list[Hit]], query: EvalQuery, top_k: int
) -> QueryResult:
    started = time.perf_counter()
    hits = search_fn(query.question)
    latency_ms = (time.perf_counter() - started) * 1000
    ranked = rank_passages(hits)[:top_k]
    stems = [passage.stem for passage in ranked]
    gold = set(query.gold_ids)
    first = next((rank for rank, stem in enumerate(stems, 1) if stem in gold), None)
    return QueryResult(
        id=query.id,
        question=query.question,
        gold_ids=query.gold_ids,
        retrieved=tuple(ranked),
        first_gold_rank=first,
        latency_ms=latency_ms,
        metrics=score_ranking(stems, query.gold_ids),
    )
