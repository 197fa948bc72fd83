"""The JSON shapes of kbchat's objects: one definition shared by the CLI and the API."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kbchat.chat.summarize import Summary
    from kbchat.store.catalog_schema import FileRecord, KBRecord
    from kbchat.types import Answer, Hit


def kb_json(record: KBRecord, stats: dict[str, int] | None = None) -> dict[str, Any]:
    value: dict[str, Any] = {
        "name": record.name,
        "description": record.description,
        "embedder": record.embedder,
        "embedder_spec": record.embedder_spec,
        "dim": record.dim,
        "store": record.store,
        "chunk_size": record.chunk_size,
        "chunk_overlap": record.chunk_overlap,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
    }
    if stats is not None:
        value["files"] = sum(v for k, v in stats.items() if k != "chunks")
        value["chunks"] = stats.get("chunks", 0)
        value["status"] = {k: v for k, v in stats.items() if k != "chunks"}
    return value


def file_json(record: FileRecord) -> dict[str, Any]:
    return {
        "name": record.name,
        "path": record.path,
        "status": record.status,
        "error": record.error,
        "chunks": record.chunks,
        "size": record.size,
        "sha256": record.sha256,
        "updated_at": record.updated_at,
    }


def hit_json(hit: Hit) -> dict[str, Any]:
    value = asdict(hit)
    value["headings"] = list(hit.headings)
    value["score"] = round(hit.score, 4)
    return value


def answer_json(answer: Answer) -> dict[str, Any]:
    """The JSON shape of an answer (a contract shared by the CLI and the API)."""
    usage = answer.usage
    return {
        "answer": answer.text,
        "citations": [asdict(c) for c in answer.citations],
        "model": answer.model,
        "usage": {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
        },
        "timings": answer.timings,
        "finish_reason": answer.finish_reason,
        "question": answer.question,
        **answer_meta(answer),
    }


def answer_meta(answer: Answer) -> dict[str, Any]:
    """What is stored with an answer so that it shows the same after a reload."""
    return {
        "outcome": answer.outcome,
        "grounded": answer.grounded,
        "notices": answer.notices,
        "closest": [asdict(c) for c in answer.closest],
    }


def summary_json(summary: Summary) -> dict[str, Any]:
    """The JSON shape of a summary (a contract shared by the CLI and the API)."""
    return {
        "summary": summary.text,
        "strategy": summary.strategy,
        "language": summary.language,
        "cached": summary.cached,
        "steps": summary.steps,
        "estimated_s": summary.estimated_s,
        "seconds": summary.seconds,
    }
