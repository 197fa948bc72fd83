"""Knowledge-base chat: rewrite a follow-up, retrieve, prompt within the context window,
stream the answer, and tie it to its sources with numbered citations.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

from kbchat.chat.memory import fit_history, truncate_to_tokens
from kbchat.errors import BadInput
from kbchat.kb import KnowledgeBase
from kbchat.lexical import tokenize
from kbchat.llm.base import ChatModel, complete
from kbchat.prompts import Language, detect_language, render, template
from kbchat.retrieve import Reranker, SearchOptions, retrieve
from kbchat.types import Answer, Citation, Delta, Hit, Message, Usage

NoHitPolicy = Literal["refuse", "fallback", "message"]
ChatEvent = str | Answer  # text deltas, then one Answer

_MARKER = re.compile(r"\[(\d{1,2})\]")
_FOLLOW_UP = re.compile(
    r"(它|他|她|这个|那个|这些|那些|其|该|上面|上述|前者|后者|呢[？?]?$)|"
    r"\b(it|its|this|that|these|those|they|them|he|she|his|her|the above|what about)\b",
    re.IGNORECASE,
)
_REFUSALS = ("资料中没有找到答案", "do not contain the answer", "does not contain the answer")
MIN_OVERLAP = 0.2
"""Share of the answer's words a passage must hold to be cited when the model cited nothing."""
_SENTENCE = re.compile(r"[^。！？!?；;\n]+[。！？!?；;]?")


@dataclass(frozen=True, slots=True)
class ChatOptions:
    """How to answer. Validated on construction."""

    search: SearchOptions = field(default_factory=SearchOptions)
    no_hit: NoHitPolicy = "refuse"
    no_hit_message: str | None = None
    temperature: float = 0.1
    max_tokens: int = 512
    history_tokens: int = 1024
    max_question_tokens: int = 1024
    rewrite: bool = True
    stop: tuple[str, ...] = ()
    instructions: str = ""  # the caller's own system prompt, added after kbchat's

    def __post_init__(self) -> None:
        if self.no_hit not in ("refuse", "fallback", "message"):
            raise BadInput(f"no_hit must be refuse, fallback or message, got {self.no_hit!r}")
        if self.no_hit == "message" and not self.no_hit_message:
            raise BadInput("no_hit 'message' needs no_hit_message")
        if self.max_tokens <= 0:
            raise BadInput(f"max_tokens must be > 0, got {self.max_tokens}")
        if any(not s for s in self.stop):
            raise BadInput(f"stop sequences must not be empty, got {list(self.stop)!r}")


def stream_answer(
    model: ChatModel,
    kbs: Sequence[KnowledgeBase],
    question: str,
    *,
    history: Sequence[Message] = (),
    options: ChatOptions | None = None,
    reranker: Reranker | None = None,
    cancel: threading.Event | None = None,
) -> Iterator[ChatEvent]:
    """Answer ``question`` from ``kbs``: yields text deltas, then the finished Answer."""
    options = options or ChatOptions()
    started = time.perf_counter()
    question, notices = checked_question(model, question, options)
    language = detect_language(question)
    standalone = question
    if options.rewrite and history and _FOLLOW_UP.search(question):
        standalone = rewrite_question(model, question, history, language)
    retrieved = retrieve(kbs, standalone, options.search, reranker=reranker)
    notices += retrieved.notices
    timings = {"retrieval_s": time.perf_counter() - started}
    if not retrieved.hits:
        yield from _no_hit(model, question, history, options, language, timings, notices, cancel)
        return
    messages, used = build_messages(model, question, retrieved.hits, history, options, language)
    answer = Answer(text="", model=model.name, question=standalone, notices=notices)
    yield from generate(model, messages, options, answer, timings, started, cancel)
    extra = _attribute(answer, used)
    if extra:
        yield extra
    answer.timings = {k: round(v, 4) for k, v in timings.items()}
    yield answer


def checked_question(
    model: ChatModel, question: str, options: ChatOptions
) -> tuple[str, list[str]]:
    question = question.strip()
    if not question:
        raise BadInput("the question is empty")
    notices: list[str] = []
    limit = min(options.max_question_tokens, model.context_window // 4)
    if model.count_tokens(question) > limit:
        question = truncate_to_tokens(question, limit, model.count_tokens)
        notices.append(f"the question was longer than {limit} tokens and was truncated")
    return question, notices


def rewrite_question(
    model: ChatModel, question: str, history: Sequence[Message], language: Language
) -> str:
    """Turn a follow-up ("what about its price?") into a standalone question."""
    recent = fit_history(history, 400, model.count_tokens)
    lines = "\n".join(f"{m.role}: {m.content}" for m in recent)
    prompt = render("rewrite", language, history=lines, question=question)
    text, _, _ = complete(model, [Message("user", prompt)], temperature=0.0, max_tokens=64)
    rewritten = text.strip().splitlines()[0].strip() if text.strip() else ""
    return rewritten if 2 <= len(rewritten) <= 4 * len(question) + 200 else question


def build_messages(
    model: ChatModel,
    question: str,
    hits: Sequence[Hit],
    history: Sequence[Message],
    options: ChatOptions,
    language: Language,
) -> tuple[list[Message], list[Hit]]:
    """The prompt, fitted to the context window: system, history, sources + question.

    Sources go in rank order until the budget is spent (the last one may be cut); the
    answer's ``max_tokens`` is always reserved. Returns the messages and the hits used.
    """
    system = _system(template("rag_system", language), options)
    count = model.count_tokens
    frame = render("rag_user", language, context="", question=question)
    budget = model.context_window - options.max_tokens - count(system) - count(frame) - 64
    kept_history = fit_history(history, min(options.history_tokens, budget // 3), count)
    budget -= sum(count(m.content) + 4 for m in kept_history)
    blocks: list[str] = []
    used: list[Hit] = []
    for hit in hits:
        block = f"[{len(used) + 1}] {_source_label(hit)}\n{hit.text}"
        cost = count(block) + 2
        if cost > budget:
            if budget > 80:
                blocks.append(truncate_to_tokens(block, budget, count))
                used.append(hit)
            break
        blocks.append(block)
        used.append(hit)
        budget -= cost
    if not used:
        raise BadInput(
            "the context window is too small for any source; raise n_ctx or lower max_tokens"
        )
    user = render("rag_user", language, context="\n\n".join(blocks), question=question)
    return [Message("system", system), *kept_history, Message("user", user)], used


def _system(prompt: str, options: ChatOptions) -> str:
    return f"{prompt}\n\n{options.instructions}" if options.instructions else prompt


def _source_label(hit: Hit) -> str:
    where = f" p.{hit.page}" if hit.page else f" [{hit.sheet}]" if hit.sheet else ""
    return f"({hit.file}{where})"


def generate(
    model: ChatModel,
    messages: list[Message],
    options: ChatOptions,
    answer: Answer,
    timings: dict[str, float],
    started: float,
    cancel: threading.Event | None,
) -> Iterator[str]:
    parts: list[str] = []
    first = True
    for delta in model.stream(
        messages,
        temperature=options.temperature,
        max_tokens=options.max_tokens,
        stop=options.stop,
        cancel=cancel,
    ):
        if delta.text:
            if first:
                timings["ttft_s"] = time.perf_counter() - started
                first = False
            parts.append(delta.text)
            yield delta.text
        _finish(answer, delta)
    answer.text = "".join(parts)
    timings["total_s"] = time.perf_counter() - started
    timings.setdefault("ttft_s", timings["total_s"])
    if answer.finish_reason == "length":
        answer.notices.append(f"the answer was cut at max_tokens ({options.max_tokens})")


def _finish(answer: Answer, delta: Delta) -> None:
    if delta.finish_reason is not None:
        answer.finish_reason = delta.finish_reason
    if delta.usage is not None:
        answer.usage = delta.usage


def _attribute(answer: Answer, used: Sequence[Hit]) -> str:
    """Fill ``answer.citations``; returns markers to append when the model wrote none."""
    if any(refusal in answer.text for refusal in _REFUSALS):
        answer.grounded = False
        return ""
    answer_tokens = set(tokenize(answer.text))
    markers = sorted({int(m) for m in _MARKER.findall(answer.text) if 1 <= int(m) <= len(used)})
    appended = ""
    if not markers:
        # The passages whose words the answer reuses most (ties: the better-ranked one).
        overlaps = [(_overlap(answer_tokens, hit.text), -n) for n, hit in enumerate(used, 1)]
        best = sorted(overlaps, reverse=True)[:2]
        markers = sorted(
            -n for score, n in best if score >= MIN_OVERLAP and score >= 0.8 * best[0][0]
        )
        if markers:
            appended = " " + "".join(f"[{n}]" for n in markers)
            answer.text += appended
    answer.citations = [_citation(n, used[n - 1], answer_tokens) for n in markers]
    answer.grounded = bool(markers)
    return appended


def _overlap(answer_tokens: set[str], passage: str) -> float:
    if not answer_tokens:
        return 0.0
    return len(answer_tokens & set(tokenize(passage))) / len(answer_tokens)


def _citation(marker: int, hit: Hit, answer_tokens: set[str]) -> Citation:
    sentences = [s.strip() for s in _SENTENCE.findall(hit.text) if s.strip()] or [hit.text]
    quote = max(sentences, key=lambda s: len(answer_tokens & set(tokenize(s))))
    return Citation(
        marker=marker,
        kb=hit.kb,
        file=hit.file,
        text=hit.text,
        score=hit.score,
        quote=quote[:300],
        page=hit.page,
        sheet=hit.sheet,
        slide=hit.slide,
    )


def _no_hit(
    model: ChatModel,
    question: str,
    history: Sequence[Message],
    options: ChatOptions,
    language: Language,
    timings: dict[str, float],
    notices: list[str],
    cancel: threading.Event | None,
) -> Iterator[ChatEvent]:
    started = time.perf_counter() - timings["retrieval_s"]
    answer = Answer(text="", model=model.name, question=question, grounded=False, notices=notices)
    if options.no_hit == "fallback":
        label = template("fallback_label", language) + "\n"
        yield label
        messages = [
            Message("system", _system(template("chat_system", language), options)),
            *fit_history(history, options.history_tokens, model.count_tokens),
            Message("user", question),
        ]
        yield from generate(model, messages, options, answer, timings, started, cancel)
        answer.text = label + answer.text
    else:
        answer.text = options.no_hit_message or template("no_answer", language)
        answer.usage = Usage()
        yield answer.text
        timings["ttft_s"] = timings["total_s"] = time.perf_counter() - started
    answer.timings = {k: round(v, 4) for k, v in timings.items()}
    yield answer
