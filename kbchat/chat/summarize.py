"""Summaries of a document's chunks: map-reduce, refine, or extract (central sentences + one pass).

Every model call is fitted to the model's context window: a map step gets at most
``context_window - output tokens - prompt`` tokens of text, so nothing overflows however
long the document is. Only the final pass streams; earlier steps report ``Progress``.
"""

from __future__ import annotations

import re
import threading
import time
import typing
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from kbchat.chat.memory import truncate_to_tokens
from kbchat.embed.base import Embedder, embed_texts
from kbchat.errors import BadInput
from kbchat.llm.base import ChatModel, complete
from kbchat.options import SummaryStrategyName
from kbchat.prompts import render, template
from kbchat.text import Language, detect_language
from kbchat.types import Message, Usage

Strategy = SummaryStrategyName
STRATEGIES: tuple[Strategy, ...] = typing.get_args(SummaryStrategyName)
_SENTENCE = re.compile(r"[^。！？!?；;\n.]+(?:[。！？!?；;]|\.(?=\s|$))?")
_MARGIN = 64
SUMMARY_TOKENS = 250
"""Longest final summary by default (3-5 sentences; shorter is faster on a CPU)."""
MAX_SENTENCES = 3000
"""Extract embeds at most this many sentences (evenly spread over a longer document)."""


@dataclass(frozen=True, slots=True)
class SummaryOptions:
    """How to summarise. Speeds are tokens per second, used to choose and to warn.

    Defaults: the embedded 0.5B model on 2 cores reads ~100 and writes ~25 tokens/s
    (DESIGN.md, "Embedded models").
    """

    strategy: Strategy = "auto"
    max_tokens: int = SUMMARY_TOKENS
    step_tokens: int = 160
    max_step_input: int = 3000
    extract_sentences: int = 10
    extract_tokens: int = 600
    parallel: int = 1
    prompt_tps: float = 100.0
    generate_tps: float = 25.0
    auto_seconds: float = 60.0
    temperature: float = 0.1

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise BadInput(
                f"strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}"
            )
        for name in ("max_tokens", "step_tokens", "max_step_input", "extract_sentences"):
            if getattr(self, name) <= 0:
                raise BadInput(f"{name} must be > 0, got {getattr(self, name)}")
        if self.parallel < 1:
            raise BadInput(f"parallel must be >= 1, got {self.parallel}")


@dataclass(frozen=True, slots=True)
class Progress:
    """A step of a summary: ``stage`` (plan, map, combine, refine, extract), steps done/total."""

    stage: str
    done: int
    total: int
    message: str = ""
    estimated_s: float = 0.0


@dataclass(slots=True)
class Summary:
    """A finished summary and what it took."""

    text: str
    strategy: Strategy
    language: Language
    steps: int
    estimated_s: float
    seconds: float = 0.0
    usage: Usage = field(default_factory=Usage)
    finish_reason: str | None = None
    cached: bool = False


SummaryEvent = str | Progress | Summary
_Steps = Generator[SummaryEvent, None, list[Message]]


def summarize(
    model: ChatModel,
    chunks: Sequence[str],
    *,
    embedder: Embedder | None = None,
    options: SummaryOptions | None = None,
    cancel: threading.Event | None = None,
) -> Iterator[SummaryEvent]:
    """Summarise a document given as its chunks in order.

    Yields a ``Progress`` plan first (strategy and expected seconds), then progress of the
    intermediate steps, the final summary's text deltas, and the ``Summary``.

    Raises:
        BadInput: no text, or ``extract`` without an embedder.
    """
    options = options or SummaryOptions()
    texts = [t.strip() for t in chunks if t.strip()]
    if not texts:
        raise BadInput("nothing to summarise: the document has no text")
    started = time.perf_counter()
    language = detect_language(" ".join(texts)[:3000])
    runner = _Runner(model, options, language, cancel)
    strategy = choose_strategy(model, texts, options, has_embedder=embedder is not None)
    estimate = estimate_seconds(model, texts, strategy, options)
    yield Progress("plan", 0, 0, f"{strategy}, about {estimate:.0f} s", estimated_s=estimate)
    if strategy == "extract":
        if embedder is None:
            raise BadInput("the extract strategy needs an embedder")
        final = yield from _extract(runner, texts, embedder)
    elif strategy == "refine":
        final = yield from _refine(runner, texts)
    else:
        final = yield from _map_reduce(runner, texts)
    text = yield from runner.stream(final)
    yield Summary(
        text=text.strip(),
        strategy=strategy,
        language=language,
        steps=runner.steps,
        estimated_s=round(estimate, 1),
        seconds=round(time.perf_counter() - started, 2),
        usage=runner.usage,
        finish_reason=runner.finish_reason,
    )


def choose_strategy(
    model: ChatModel, texts: Sequence[str], options: SummaryOptions, *, has_embedder: bool
) -> Strategy:
    """``auto``: map-reduce when it is expected within ``auto_seconds``, else extract."""
    if options.strategy != "auto":
        return options.strategy
    quick = estimate_seconds(model, texts, "map-reduce", options) <= options.auto_seconds
    return "map-reduce" if quick or not has_embedder else "extract"


def estimate_seconds(
    model: ChatModel, texts: Sequence[str], strategy: Strategy, options: SummaryOptions
) -> float:
    """Expected seconds for ``strategy`` from the model speeds in ``options``."""
    tokens = sum(model.count_tokens(t) for t in texts)
    budget = step_budget(model, options)
    steps = max(1, -(-tokens // budget))
    read, write = options.prompt_tps, options.generate_tps
    final = options.max_tokens / write
    if strategy == "extract":
        sentences = min(MAX_SENTENCES, sum(len(_SENTENCE.findall(t)) for t in texts))
        return sentences / 50 + options.extract_tokens / read + final
    if steps == 1:
        return tokens / read + final
    if strategy == "refine":
        return (tokens + steps * options.step_tokens) / read + steps * options.step_tokens / write
    mapped = tokens / read + steps * options.step_tokens / write / options.parallel
    return mapped + steps * options.step_tokens / read + final


def step_budget(model: ChatModel, options: SummaryOptions) -> int:
    """Tokens of document text one model call may read (never overflows the context)."""
    frame = max(
        model.count_tokens(template(name, lang))
        for name in ("summarize_part", "summarize_refine", "summarize_whole")
        for lang in ("en", "zh")
    )
    room = model.context_window - max(options.max_tokens, options.step_tokens) - frame - _MARGIN
    room -= options.step_tokens  # refine also carries the summary so far
    if room < 200:
        raise BadInput(
            f"the model's context window ({model.context_window} tokens) is too small to "
            "summarise in; raise n_ctx or lower max_tokens"
        )
    return min(room, options.max_step_input)


def sections(texts: Sequence[str], budget: int, count: Callable[[str], int]) -> list[str]:
    """Consecutive texts packed into sections of at most ``budget`` tokens (long ones cut)."""
    packed: list[str] = []
    current: list[str] = []
    used = 0
    for text in texts:
        cost = count(text) + 1
        if cost > budget:
            text, cost = truncate_to_tokens(text, budget, count), budget
        if current and used + cost > budget:
            packed.append("\n".join(current))
            current, used = [], 0
        current.append(text)
        used += cost
    if current:
        packed.append("\n".join(current))
    return packed


class _Runner:
    """Runs the model calls of one summary and adds up what they used."""

    def __init__(
        self,
        model: ChatModel,
        options: SummaryOptions,
        language: Language,
        cancel: threading.Event | None,
    ) -> None:
        self.model = model
        self.options = options
        self.language = language
        self.cancel = cancel
        self.budget = step_budget(model, options)
        self.steps = 0
        self.usage = Usage()
        self.finish_reason: str | None = None

    def prompt(self, name: str, **values: str) -> list[Message]:
        return [Message("user", render(name, self.language, **values))]

    def step(self, messages: list[Message]) -> str:
        """One intermediate call, to the end."""
        self._check_cancel()
        text, usage, _ = complete(
            self.model,
            messages,
            temperature=self.options.temperature,
            max_tokens=self.options.step_tokens,
            cancel=self.cancel,
        )
        self._add(usage)
        return text.strip()

    def stream(self, messages: list[Message]) -> Generator[str, None, str]:
        """The final call, streamed; returns its whole text."""
        self._check_cancel()
        parts: list[str] = []
        for delta in self.model.stream(
            messages,
            temperature=self.options.temperature,
            max_tokens=self.options.max_tokens,
            cancel=self.cancel,
        ):
            if delta.text:
                parts.append(delta.text)
                yield delta.text
            if delta.usage is not None:
                self._add(delta.usage)
            if delta.finish_reason is not None:
                self.finish_reason = delta.finish_reason
        return "".join(parts)

    def _add(self, usage: Usage) -> None:
        self.steps += 1
        self.usage = Usage(
            self.usage.prompt_tokens + usage.prompt_tokens,
            self.usage.completion_tokens + usage.completion_tokens,
        )

    def _check_cancel(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise BadInput("the summary was stopped")


def _map_reduce(runner: _Runner, texts: list[str]) -> _Steps:
    """Summarise sections (in parallel on remote models), then combine; returns final prompt."""
    count = runner.model.count_tokens
    parts = sections(texts, runner.budget, count)
    if len(parts) == 1:
        return runner.prompt("summarize_whole", text=parts[0])
    level = 0
    while len(parts) > 1:
        level += 1
        stage = "map" if level == 1 else "combine"
        summaries = yield from _map(runner, parts, stage)
        parts = sections(summaries, runner.budget, count)
    return runner.prompt("summarize_combine", text=parts[0])


def _map(runner: _Runner, parts: list[str], stage: str) -> Generator[SummaryEvent, None, list[str]]:
    prompts = [runner.prompt("summarize_part", text=part) for part in parts]
    yield Progress(stage, 0, len(prompts))
    if runner.options.parallel == 1:
        results = []
        for n, messages in enumerate(prompts, 1):
            results.append(runner.step(messages))
            yield Progress(stage, n, len(prompts))
        return results
    with ThreadPoolExecutor(runner.options.parallel, thread_name_prefix="kbchat-map") as pool:
        futures = [pool.submit(runner.step, messages) for messages in prompts]
        for n, future in enumerate(futures, 1):
            future.result()
            yield Progress(stage, n, len(prompts))
        return [future.result() for future in futures]


def _refine(runner: _Runner, texts: list[str]) -> _Steps:
    """Summarise the first section, then fold each next one in; returns the last prompt."""
    parts = sections(texts, runner.budget, runner.model.count_tokens)
    if len(parts) == 1:
        return runner.prompt("summarize_whole", text=parts[0])
    yield Progress("refine", 0, len(parts))
    summary = runner.step(runner.prompt("summarize_part", text=parts[0]))
    yield Progress("refine", 1, len(parts))
    for n, part in enumerate(parts[1:-1], 2):
        summary = runner.step(runner.prompt("summarize_refine", summary=summary, text=part))
        yield Progress("refine", n, len(parts))
    return runner.prompt("summarize_refine", summary=summary, text=parts[-1])


def _extract(runner: _Runner, texts: list[str], embedder: Embedder) -> _Steps:
    """Pick the most central sentences by embedding; returns the one short pass's prompt."""
    sentences = document_sentences(texts)
    yield Progress("extract", 0, len(sentences))
    vectors = embed_texts(embedder, sentences, batch_size=32)
    yield Progress("extract", len(sentences), len(sentences))
    picked = central_sentences(
        sentences,
        vectors,
        limit=runner.options.extract_sentences,
        budget=runner.options.extract_tokens,
        count=runner.model.count_tokens,
    )
    return runner.prompt("summarize_extract", text="\n".join(picked))


def document_sentences(texts: Sequence[str]) -> list[str]:
    """The document's sentences in order, without repeats (chunk overlap) or fragments."""
    seen: set[str] = set()
    sentences = []
    for text in texts:
        for match in _SENTENCE.findall(text):
            sentence = match.strip()
            if len(sentence) >= 6 and sentence not in seen:
                seen.add(sentence)
                sentences.append(sentence)
    if len(sentences) > MAX_SENTENCES:
        step = len(sentences) / MAX_SENTENCES
        sentences = [sentences[int(i * step)] for i in range(MAX_SENTENCES)]
    return sentences


def central_sentences(
    sentences: Sequence[str],
    vectors: np.ndarray,
    *,
    limit: int,
    budget: int,
    count: Callable[[str], int],
    redundancy: float = 0.5,
) -> list[str]:
    """The sentences closest to the document's centroid, each unlike those already picked.

    Greedy maximal marginal relevance (Carbonell & Goldstein, 1998): score = similarity to
    the centroid - ``redundancy`` x the highest similarity to a picked sentence. Stops at
    ``limit`` sentences or ``budget`` tokens; returns them in document order.
    """
    if len(sentences) == 0:
        return []
    centroid = vectors.mean(axis=0)
    centroid /= np.linalg.norm(centroid) or 1.0
    central = vectors @ centroid
    closest = np.full(len(sentences), -np.inf)
    chosen: list[int] = []
    used = 0
    while len(chosen) < min(limit, len(sentences)):
        penalty = np.where(np.isfinite(closest), closest, 0.0)
        scores = central - redundancy * penalty
        scores[chosen] = -np.inf
        best = int(np.argmax(scores))
        cost = count(sentences[best])
        if chosen and used + cost > budget:
            break
        chosen.append(best)
        used += cost
        closest = np.maximum(closest, vectors @ vectors[best])
    return [sentences[i] for i in sorted(chosen)]
