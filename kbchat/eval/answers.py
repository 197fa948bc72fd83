"""Answer metrics over a question set: accuracy on answerable questions, unanswerable questions
declined, false refusals, citation hit rate and time to first token.

An answerable question is answered correctly when every inner list of its required answers has
at least one member occurring in the answer (case-insensitive substring), the rule of the shared
evaluation sets. An unanswerable question (``"answerable": false``, or no answers at all) is
handled correctly when the answer declines. A citation hits when the cited file's stem is one of
the question's gold passage ids.

Whether an answer declines is read from the structured result first (``Answer.refused``); a
system that only returns text (a plain prompt told to say it does not know) is judged by its
text: a refusal phrase in Chinese or English (see ``REFUSAL_PHRASES``), the fallback label of
``no_hit = "fallback"`` not counting as one.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kbchat.eval.retrieval import EvalQuery
from kbchat.prompts import template
from kbchat.types import Answer

REFUSAL_PHRASES = re.compile(
    r"不知道|不清楚|无法(回答|确定|判断|得知|找到|提供|根据)|不能(回答|确定)|没有(找到|答案)|"
    r"(没有|未|并未|没|不)(提到|提及|包含|给出|说明|涉及|记载|介绍)|(没有|缺少|无)相关(的)?(信息|内容|资料)|"
    r"\b(i|we) (do not|don't|cannot|can't) (know|answer|tell|say|find|determine)\b|"
    r"\b(cannot|can't|could not|couldn't|unable to) (be )?(answer|determine|find|tell|say)|"
    r"\b(do|does|did) not (contain|mention|say|state|provide|include|specify|give)\b|"
    r"\bno (relevant |such )?(information|answer|mention)\b|"
    r"\bnot (mentioned|provided|specified|stated|given|found)\b|\bnothing relevant\b",
    re.IGNORECASE,
)
"""Phrases that decline, for systems that return only text; matched anywhere in the answer."""


def answer_is_correct(answer: str, answers_required: Sequence[Sequence[str]]) -> bool:
    """The shared sets' rule: each required group has a member in the answer."""
    if not answers_required:
        return False
    text = answer.lower()
    return all(any(option.lower() in text for option in group) for group in answers_required)


def declines_in_text(text: str) -> bool:
    """Whether an answer's text declines (says the sources do not hold the answer)."""
    for language in ("zh", "en"):
        text = text.replace(template("fallback_label", language), "")
    return REFUSAL_PHRASES.search(text) is not None


def is_declined(answer: Answer) -> bool:
    """The structured refusal flag, else a refusal phrase in the text."""
    return answer.refused or declines_in_text(answer.text)


@dataclass(frozen=True, slots=True)
class AnswerResult:
    """One question's answer and how it scored.

    ``correct``: answerable questions, the required answers occur in it; unanswerable ones, it
    declines.
    """

    id: str
    question: str
    answer: str
    answerable: bool
    correct: bool
    declined: bool
    cited_gold: bool
    grounded: bool
    ttft_s: float
    total_s: float
    declined_because: str = ""
    """Why kbchat declined (the ``declined: ...`` notice: a weak passage, missing key terms,
    or a check of the answer's start), "" when it answered or the model itself refused."""


def _share(flags: Sequence[bool]) -> float | None:
    return sum(flags) / len(flags) if flags else None


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


@dataclass(frozen=True, slots=True)
class AnswerReport:
    """Shares (fractions in [0, 1]; None when the set has no question of that kind), median
    timings in seconds, and per-question rows.

    ``accuracy``, ``false_refusals`` (declined and not correct) and ``citation_hit_rate`` are over
    the answerable questions; ``declined_unanswerable`` over the unanswerable ones.
    """

    questions: int
    answerable: int
    unanswerable: int
    accuracy: float | None
    declined_unanswerable: float | None
    false_refusals: float | None
    citation_hit_rate: float | None
    answered_from_kb: float | None
    median_ttft_s: float | None
    median_ttft_answerable_s: float | None
    median_ttft_unanswerable_s: float | None
    median_total_s: float | None
    details: tuple[AnswerResult, ...]

    @classmethod
    def from_rows(cls, rows: Sequence[AnswerResult]) -> AnswerReport:
        """Aggregate per-question rows."""
        answerable = [r for r in rows if r.answerable]
        unanswerable = [r for r in rows if not r.answerable]
        return cls(
            questions=len(rows),
            answerable=len(answerable),
            unanswerable=len(unanswerable),
            accuracy=_share([r.correct for r in answerable]),
            declined_unanswerable=_share([r.declined for r in unanswerable]),
            false_refusals=_share([r.declined and not r.correct for r in answerable]),
            citation_hit_rate=_share([r.cited_gold for r in answerable]),
            answered_from_kb=_share([r.grounded for r in rows]),
            median_ttft_s=_median([r.ttft_s for r in rows]),
            median_ttft_answerable_s=_median([r.ttft_s for r in answerable]),
            median_ttft_unanswerable_s=_median([r.ttft_s for r in unanswerable]),
            median_total_s=_median([r.total_s for r in rows]),
            details=tuple(rows),
        )

    def summary(self) -> dict[str, Any]:
        """The aggregate numbers as a JSON-ready dict."""
        return {
            "questions": self.questions,
            "answerable": self.answerable,
            "unanswerable": self.unanswerable,
            "accuracy": _rounded(self.accuracy, 4),
            "declined_unanswerable": _rounded(self.declined_unanswerable, 4),
            "false_refusals": _rounded(self.false_refusals, 4),
            "citation_hit_rate": _rounded(self.citation_hit_rate, 4),
            "answered_from_kb": _rounded(self.answered_from_kb, 4),
            "median_ttft_s": _rounded(self.median_ttft_s, 3),
            "median_ttft_answerable_s": _rounded(self.median_ttft_answerable_s, 3),
            "median_ttft_unanswerable_s": _rounded(self.median_ttft_unanswerable_s, 3),
            "median_total_s": _rounded(self.median_total_s, 3),
        }

    def to_json(self, *, details: bool = True) -> dict[str, Any]:
        """Summary plus (unless ``details`` is False) every question's row."""
        value = self.summary()
        if details:
            value["details"] = [
                {
                    "id": r.id,
                    "question": r.question,
                    "answer": r.answer,
                    "answerable": r.answerable,
                    "correct": r.correct,
                    "declined": r.declined,
                    "cited_gold": r.cited_gold,
                    "grounded": r.grounded,
                    "ttft_s": round(r.ttft_s, 3),
                    "total_s": round(r.total_s, 3),
                    "declined_because": r.declined_because,
                }
                for r in self.details
            ]
        return value


def score_answer(query: EvalQuery, answer: Answer) -> AnswerResult:
    """Score one answer to one question (see the module docstring for the rules)."""
    declined = is_declined(answer)
    if query.answerable:
        correct = not answer.refused and answer_is_correct(answer.text, query.required_groups)
    else:
        correct = declined
    cited = {Path(c.file).stem for c in answer.citations}
    return AnswerResult(
        id=query.id,
        question=query.question,
        answer=answer.text,
        answerable=query.answerable,
        correct=correct,
        declined=declined,
        cited_gold=bool(cited & set(query.gold_ids)),
        grounded=answer.grounded,
        ttft_s=answer.timings.get("ttft_s", 0.0),
        total_s=answer.timings.get("total_s", 0.0),
        declined_because=next(
            (n.removeprefix("declined: ") for n in answer.notices if n.startswith("declined: ")),
            "",
        ),
    )


def evaluate_answers(
    answer_fn: Callable[[str], Answer],
    queries: Sequence[EvalQuery],
    *,
    on_question: Callable[[AnswerResult], None] | None = None,
) -> AnswerReport:
    """Ask every question through ``answer_fn`` and score the answers.

    Args:
        answer_fn: answers one question (a fresh conversation each time).
        queries: the question set; answerable and unanswerable questions may be mixed.
        on_question: called with each scored row as soon as it is ready (progress output).

    Returns:
        The report, with answerable and unanswerable questions counted separately.
    """
    rows: list[AnswerResult] = []
    for query in queries:
        row = score_answer(query, answer_fn(query.question))
        rows.append(row)
        if on_question is not None:
            on_question(row)
    return AnswerReport.from_rows(rows)
