"""Plain LLM chat (no knowledge base) with conversation memory within a token budget."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence

from kbchat.chat.answer_log import AnswerTrace, logged
from kbchat.chat.memory import fit_history
from kbchat.chat.rag import ChatEvent, ChatOptions, checked_question, generate
from kbchat.llm.base import ChatModel
from kbchat.prompts import template
from kbchat.text import detect_language
from kbchat.types import Answer, Message


def stream_chat(
    model: ChatModel,
    question: str,
    *,
    history: Sequence[Message] = (),
    options: ChatOptions | None = None,
    cancel: threading.Event | None = None,
) -> Iterator[ChatEvent]:
    """Answer from the model alone: yields text deltas, then the finished Answer."""
    options = options or ChatOptions()
    return logged(_answer(model, question, history, options, cancel), AnswerTrace())


def _answer(
    model: ChatModel,
    question: str,
    history: Sequence[Message],
    options: ChatOptions,
    cancel: threading.Event | None,
) -> Iterator[ChatEvent]:
    started = time.perf_counter()
    question, notices = checked_question(model, question, options)
    system = template("chat_system", detect_language(question))
    budget = min(
        options.history_tokens,
        model.context_window - options.max_tokens - model.count_tokens(system + question) - 64,
    )
    messages = [
        Message("system", system),
        *fit_history(history, budget, model.count_tokens),
        Message("user", question),
    ]
    answer = Answer(text="", model=model.name, question=question, grounded=False, notices=notices)
    timings: dict[str, float] = {}
    yield from generate(model, messages, options, answer, timings, started, cancel)
    answer.timings = {k: round(v, 4) for k, v in timings.items()}
    yield answer
