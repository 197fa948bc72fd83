"""Summaries of a document's chunks: map-reduce, refine, or extract (central sentences + one pass).

Every model call is fitted to the model's context window: a map step gets at most
``context_window - output tokens - prompt`` tokens of text, so nothing overflows however
long the document is. Only the final pass streams; earlier steps report ``Progress``.

Where the time goes on a CPU (bench/results/summarize.json): map-reduce reads the whole
document once (~100 tokens/s on the embedded model: ~70 s for 10 pages), then writes a
short summary per section (~25 tokens/s) and the final one; so sections are few and even
and their summaries short. Extract reads only its picked sentences (~500 tokens) and writes
one short summary; embedding the sentences takes a second or two. The instructions come
before the text in every prompt, so llama.cpp's prompt cache reuses them between steps
(a few dozen tokens; the document text itself is read once and never again).
"""

from __future__ import annotations

import functools
import math
import re
import threading
import time
import typing
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from kbchat.chat.memory import truncate_to_tokens
from kbchat.chat.summary_extract import central_sentences, document_sentences, sentence_vectors
from kbchat.chat.summary_speed import StepTiming, speeds_of
from kbchat.embed.base import Embedder
from kbchat.errors import BadInput
from kbchat.llm.base import FINISH_LENGTH, ChatModel
from kbchat.options import SummaryStrategyName
from kbchat.prompts import render, template
from kbchat.text import CLOSING_MARKS, Language, detect_language
from kbchat.types import Message, Usage

Strategy = SummaryStrategyName
STRATEGIES: tuple[Strategy, ...] = typing.get_args(SummaryStrategyName)
_MARGIN = 64
_SENTENCE_END = re.compile(f"[。！？!?][{CLOSING_MARKS}]*|\\.[{CLOSING_MARKS}]*(?=\\s|$)")
SUMMARY_TOKENS = 200
"""Longest final summary by default (one paragraph; each token ~40 ms on the embedded model)."""


@dataclass(frozen=True, slots=True)
class SummaryOptions:
    """How to summarise; token counts are the model's tokens.

    Args:
        max_tokens: Longest final summary (map-reduce, refine).
        step_tokens: Longest summary of one section (map and refine steps).
        max_step_input: Most document tokens one step reads (the context window may
            allow fewer): 2-3k tokens per step read nearly as fast per token as short
            prompts on the embedded model, and fewer steps write fewer section summaries.
        extract_sentences, extract_tokens: At most this many central sentences, and
            tokens of them, go into the extract pass.
        extract_max_tokens: Longest extract summary (3-5 sentences).
        max_sentences: Extract embeds at most this many sentences (evenly spread).
        parallel: Map steps run at once (1 on the embedded model, 4 on a remote one).
        prompt_tps, generate_tps: Expected model speeds until some are measured
            (``summary_speed``); the embedded 0.5B model on 2 idle cores reads ~100 and
            writes ~25 tokens/s (DESIGN.md, "Embedded models").
        sentences_per_s: Expected sentence embedding speed (USE on 2 cores: several
            hundred a second, bench/results/summarize.json).
        auto_seconds: ``auto`` takes map-reduce when it is expected within this, else
            extract.
    """

    strategy: Strategy = "auto"
    max_tokens: int = SUMMARY_TOKENS
    step_tokens: int = 100
    max_step_input: int = 3000
    extract_sentences: int = 20
    extract_tokens: int = 500
    extract_max_tokens: int = 160
    max_sentences: int = 1000
    parallel: int = 1
    prompt_tps: float = 100.0
    generate_tps: float = 25.0
    sentences_per_s: float = 200.0
    auto_seconds: float = 60.0
    temperature: float = 0.1

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise BadInput(
                f"strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}"
            )
        for name in (
            "max_tokens",
            "step_tokens",
            "max_step_input",
            "extract_sentences",
            "extract_tokens",
            "extract_max_tokens",
            "max_sentences",
            "prompt_tps",
            "generate_tps",
            "sentences_per_s",
        ):
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
    """A finished summary and what it took (``timings``: one per model call, and the
    sentence embedding of extract)."""

    text: str
    strategy: Strategy
    language: Language
    steps: int
    estimated_s: float
    seconds: float = 0.0
    usage: Usage = field(default_factory=Usage)
    finish_reason: str | None = None
    cached: bool = False
    timings: list[StepTiming] = field(default_factory=list)


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
    count = runner.count
    has_embedder = embedder is not None
    strategy = choose_strategy(model, texts, options, has_embedder=has_embedder, count=count)
    estimate = estimate_seconds(model, texts, strategy, options, count=count)
    yield Progress("plan", 0, 0, f"{strategy}, about {estimate:.0f} s", estimated_s=estimate)
    final_tokens = options.max_tokens
    if strategy == "extract":
        if embedder is None:
            raise BadInput("the extract strategy needs an embedder")
        final = yield from _extract(runner, texts, embedder)
        final_tokens = min(options.max_tokens, options.extract_max_tokens)
    elif strategy == "refine":
        final = yield from _refine(runner, texts)
    else:
        final = yield from _map_reduce(runner, texts)
    text = yield from runner.stream(final, final_tokens)
    if runner.finish_reason == FINISH_LENGTH:
        text = whole_sentences(text)
    yield Summary(
        text=text.strip(),
        strategy=strategy,
        language=language,
        steps=runner.steps,
        estimated_s=round(estimate, 1),
        seconds=round(time.perf_counter() - started, 2),
        usage=runner.usage,
        finish_reason=runner.finish_reason,
        timings=runner.timings,
    )


def whole_sentences(text: str) -> str:
    """``text`` up to its last sentence end (all of it if it has none): a summary cut off
    by max_tokens does not end mid-sentence."""
    ends = [m.end() for m in _SENTENCE_END.finditer(text.rstrip())]
    return text[: ends[-1]] if ends else text


def choose_strategy(
    model: ChatModel,
    texts: Sequence[str],
    options: SummaryOptions,
    *,
    has_embedder: bool,
    count: Callable[[str], int] | None = None,
) -> Strategy:
    """``auto``: map-reduce when it is expected within ``auto_seconds`` at the model's
    measured speed (see ``estimate_seconds``), else extract."""
    if options.strategy != "auto":
        return options.strategy
    expected = estimate_seconds(model, texts, "map-reduce", options, count=count)
    return "map-reduce" if expected <= options.auto_seconds or not has_embedder else "extract"


def estimate_seconds(
    model: ChatModel,
    texts: Sequence[str],
    strategy: Strategy,
    options: SummaryOptions,
    *,
    count: Callable[[str], int] | None = None,
) -> float:
    """Expected seconds for ``strategy``: tokens read and (at most) written per step, at
    the speeds measured on ``model`` in this process (``options``' speeds until then)."""
    count = count or model.count_tokens
    speeds = speeds_of(model)
    read = speeds.prompt_tps(options.prompt_tps)
    write = speeds.generate_tps(options.generate_tps)
    frame = _frame_tokens(model)
    if strategy == "extract":
        sentences = len(document_sentences(texts, limit=options.max_sentences))
        picked = min(options.extract_tokens, sum(count(t) for t in texts))
        written = min(options.max_tokens, options.extract_max_tokens)
        return sentences / options.sentences_per_s + (picked + frame) / read + written / write
    tokens = sum(count(t) for t in texts)
    steps = max(1, math.ceil(tokens / step_budget(model, options)))
    final = options.max_tokens / write
    if steps == 1:
        return (tokens + frame) / read + final
    written = steps * options.step_tokens
    if strategy == "refine":
        read_all = tokens + steps * frame + (steps - 1) * options.step_tokens
        return read_all / read + (written - options.step_tokens) / write + final
    mapped = (tokens + steps * frame) / read + written / write / options.parallel
    return mapped + (written + frame) / read + final


def step_budget(model: ChatModel, options: SummaryOptions) -> int:
    """Tokens of document text one model call may read (never overflows the context)."""
    room = (
        model.context_window
        - max(options.max_tokens, options.step_tokens)
        - _frame_tokens(model)
        - _MARGIN
        - options.step_tokens  # refine also carries the summary so far
    )
    if room < 200:
        raise BadInput(
            f"the model's context window ({model.context_window} tokens) is too small to "
            "summarise in; raise n_ctx or lower max_tokens"
        )
    return min(room, options.max_step_input)


def _frame_tokens(model: ChatModel) -> int:
    """Tokens of the longest summary prompt without its text."""
    return max(
        model.count_tokens(template(name, lang))
        for name in ("summarize_part", "summarize_refine", "summarize_whole", "summarize_extract")
        for lang in ("en", "zh")
    )


def sections(texts: Sequence[str], budget: int, count: Callable[[str], int]) -> list[str]:
    """Consecutive texts packed into sections of at most ``budget`` tokens (long ones cut).

    The sections are about equal: as few as the budget allows, each filled to an even
    share of the text (a text goes in while its middle is within the share), rather than
    the last one left nearly empty.
    """
    costs = [min(count(text) + 1, budget) for text in texts]
    share = sum(costs) / max(1, math.ceil(sum(costs) / budget))
    packed: list[str] = []
    current: list[str] = []
    used = 0
    for text, cost in zip(texts, costs, strict=True):
        if cost == budget:
            text = truncate_to_tokens(text, budget - 1, count)
        if current and (used + cost > budget or used + cost / 2 > share):
            packed.append("\n".join(current))
            current, used = [], 0
        current.append(text)
        used += cost
    if current:
        packed.append("\n".join(current))
    return packed


class _Runner:
    """Runs the model calls of one summary, timing them and adding up what they used."""

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
        self.count = functools.lru_cache(maxsize=8192)(model.count_tokens)
        self.speeds = speeds_of(model)
        self.steps = 0
        self.usage = Usage()
        self.finish_reason: str | None = None
        self.timings: list[StepTiming] = []
        self._lock = threading.Lock()

    def prompt(self, name: str, **values: str) -> list[Message]:
        return [Message("user", render(name, self.language, **values))]

    def step(self, stage: str, messages: list[Message]) -> str:
        """One intermediate call, to the end."""
        return "".join(self._call(stage, messages, self.options.step_tokens)).strip()

    def stream(self, messages: list[Message], max_tokens: int) -> Generator[str, None, str]:
        """The final call, streamed; returns its whole text."""
        parts: list[str] = []
        for text in self._call("final", messages, max_tokens):
            parts.append(text)
            yield text
        return "".join(parts)

    def _call(self, stage: str, messages: list[Message], max_tokens: int) -> Iterator[str]:
        """Stream one call's text; time its prompt and generation and count its usage."""
        self._check_cancel()
        started = time.perf_counter()
        first: float | None = None
        usage, finish = Usage(), None
        for delta in self.model.stream(
            messages,
            temperature=self.options.temperature,
            max_tokens=max_tokens,
            cancel=self.cancel,
        ):
            if delta.text:
                first = first or time.perf_counter()
                yield delta.text
            usage = delta.usage or usage
            finish = delta.finish_reason or finish
        ended = time.perf_counter()
        first = first or ended
        timing = StepTiming(
            stage=stage,
            prompt_tokens=usage.prompt_tokens,
            prompt_s=round(first - started, 3),
            completion_tokens=usage.completion_tokens,
            generate_s=round(ended - first, 3),
        )
        self.speeds.record(timing)
        with self._lock:
            self.steps += 1
            self.usage = Usage(
                self.usage.prompt_tokens + usage.prompt_tokens,
                self.usage.completion_tokens + usage.completion_tokens,
            )
            self.timings.append(timing)
            self.finish_reason = finish

    def _check_cancel(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise BadInput("the summary was stopped")


def _map_reduce(runner: _Runner, texts: list[str]) -> _Steps:
    """Summarise sections (in parallel on remote models), then combine; returns final prompt."""
    count = runner.count
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
            results.append(runner.step(stage, messages))
            yield Progress(stage, n, len(prompts))
        return results
    with ThreadPoolExecutor(runner.options.parallel, thread_name_prefix="kbchat-map") as pool:
        futures = [pool.submit(runner.step, stage, messages) for messages in prompts]
        for n, future in enumerate(futures, 1):
            future.result()
            yield Progress(stage, n, len(prompts))
        return [future.result() for future in futures]


def _refine(runner: _Runner, texts: list[str]) -> _Steps:
    """Summarise the first section, then fold each next one in; returns the last prompt."""
    parts = sections(texts, runner.budget, runner.count)
    if len(parts) == 1:
        return runner.prompt("summarize_whole", text=parts[0])
    yield Progress("refine", 0, len(parts))
    summary = runner.step("refine", runner.prompt("summarize_part", text=parts[0]))
    yield Progress("refine", 1, len(parts))
    for n, part in enumerate(parts[1:-1], 2):
        prompt = runner.prompt("summarize_refine", summary=summary, text=part)
        summary = runner.step("refine", prompt)
        yield Progress("refine", n, len(parts))
    return runner.prompt("summarize_refine", summary=summary, text=parts[-1])


def _extract(runner: _Runner, texts: list[str], embedder: Embedder) -> _Steps:
    """Pick the most central sentences by embedding; returns the one short pass's prompt."""
    sentences = document_sentences(texts, limit=runner.options.max_sentences)
    yield Progress("extract", 0, len(sentences))
    started = time.perf_counter()
    vectors, used = sentence_vectors(embedder, sentences)
    seconds = round(time.perf_counter() - started, 3)
    runner.timings.append(StepTiming("embed", len(sentences), seconds, 0, 0.0))
    yield Progress("extract", len(sentences), len(sentences), f"sentences embedded by {used}")
    picked = central_sentences(
        sentences,
        vectors,
        limit=runner.options.extract_sentences,
        budget=min(runner.options.extract_tokens, runner.budget),
        count=runner.count,
    )
    return runner.prompt("summarize_extract", text="\n".join(picked))
