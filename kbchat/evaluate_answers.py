"""Answer metrics over a question set: accuracy, citation hit rate, time to first token.

An answer is correct when every inner list of ``answers_required`` has at least one member
occurring in it (case-insensitive substring), the rule of the shared evaluation sets. A
citation hits when the cited file's stem is one of the question's gold passage ids.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kbchat.evaluate import EvalQuery
from kbchat.types import Answer


def answer_is_correct(answer: str, answers_required: Sequence[Sequence[str]]) -> bool:
    """The shared sets' rule: each required group has a member in the answer."""
    if not answers_required:
        return False
    text = answer.lower()
    return all(any(option.lower() in text for option in group) for group in answers_required)


@dataclass(frozen=True, slots=True)
class AnswerResult:
    """One question's answer and how it scored."""

    id: str
    question: str
    answer: str
    correct: bool
    cited_gold: bool
    grounded: bool
    ttft_s: float
    total_s: float


@dataclass(frozen=True, slots=True)
class AnswerReport:
    """Accuracy and citation hit rate (fractions) with median timings, plus per-question rows."""

    questions: int
    accuracy: float
    citation_hit_rate: float
    answered_from_kb: float
    median_ttft_s: float
    median_total_s: float
    details: tuple[AnswerResult, ...]

    def to_json(self, *, details: bool = True) -> dict[str, Any]:
        value: dict[str, Any] = {
            "questions": self.questions,
            "accuracy": round(self.accuracy, 4),
            "citation_hit_rate": round(self.citation_hit_rate, 4),
            "answered_from_kb": round(self.answered_from_kb, 4),
            "median_ttft_s": round(self.median_ttft_s, 3),
            "median_total_s": round(self.median_total_s, 3),
        }
        if details:
            value["details"] = [
                {
                    "id": r.id,
                    "question": r.question,
                    "answer": r.answer,
                    "correct": r.correct,
                    "cited_gold": r.cited_gold,
                    "grounded": r.grounded,
                    "ttft_s": round(r.ttft_s, 3),
                    "total_s": round(r.total_s, 3),
                }
                for r in self.details
            ]
        return value


def evaluate_answers(
    answer_fn: Callable[[str], Answer],
    queries: Sequence[EvalQuery],
    *,
    on_question: Callable[[AnswerResult], None] | None = None,
) -> AnswerReport:
    """Ask every question through ``answer_fn`` and score the answers.

    Questions without ``answers_required`` cannot be scored for accuracy and count as wrong;
    use a set that has them.
    """
    rows: list[AnswerResult] = []
    for query in queries:
        answer = answer_fn(query.question)
        cited = {Path(c.file).stem for c in answer.citations}
        row = AnswerResult(
            id=query.id,
            question=query.question,
            answer=answer.text,
            correct=answer_is_correct(answer.text, query.answers_required),
            cited_gold=bool(cited & set(query.gold_ids)),
            grounded=answer.grounded,
            ttft_s=answer.timings.get("ttft_s", 0.0),
            total_s=answer.timings.get("total_s", 0.0),
        )
        rows.append(row)
        if on_question is not None:
            on_question(row)
    count = len(rows) or 1
    return AnswerReport(
        questions=len(rows),
        accuracy=sum(r.correct for r in rows) / count,
        citation_hit_rate=sum(r.cited_gold for r in rows) / count,
        answered_from_kb=sum(r.grounded for r in rows) / count,
        median_ttft_s=statistics.median(r.ttft_s for r in rows) if rows else 0.0,
        median_total_s=statistics.median(r.total_s for r in rows) if rows else 0.0,
        details=tuple(rows),
    )
