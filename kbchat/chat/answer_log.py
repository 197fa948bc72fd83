"""One log line per answer: knowledge bases, mode, hits, retrieval ms, time to first token,
tokens and outcome. The question and the answer's text are not logged."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from kbchat.types import Answer

log = logging.getLogger(__name__)


@dataclass
class AnswerTrace:
    """What an answer's log line reports; the answering generator fills in ``hits``."""

    kbs: Sequence[str] = ()
    mode: str = "none"
    hits: int = 0
    fields: dict[str, Any] = field(default_factory=dict)


def logged(events: Iterator[Any], trace: AnswerTrace) -> Iterator[Any]:
    """Pass ``events`` through and log the answer once they end (or fail, or are closed).

    The outcome is the Answer's (answered, refused, fallback); ``error`` when the stream
    raised, ``stopped`` when it was closed before its Answer.
    """
    answer: Answer | None = None
    outcome = "stopped"
    try:
        for event in events:
            if isinstance(event, Answer):
                answer = event
                outcome = event.outcome
            yield event
    except Exception:
        outcome = "error"
        raise
    finally:
        _log(trace, answer, outcome)


def _log(trace: AnswerTrace, answer: Answer | None, outcome: str) -> None:
    timings = answer.timings if answer is not None else {}

    def ms(key: str) -> float | None:
        return round(timings[key] * 1000, 1) if key in timings else None

    fields = {
        "kbs": list(trace.kbs) or "-",
        "mode": trace.mode,
        "hits": trace.hits,
        "retrieval_ms": ms("retrieval_s"),
        "ttft_ms": ms("ttft_s"),
        "total_ms": ms("total_s"),
        "prompt_tokens": answer.usage.prompt_tokens if answer is not None else None,
        "completion_tokens": answer.usage.completion_tokens if answer is not None else None,
        "model": answer.model if answer is not None else None,
        "outcome": outcome,
        **trace.fields,
    }
    log.info("answer", extra={"fields": {k: v for k, v in fields.items() if v is not None}})
