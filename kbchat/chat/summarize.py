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

import math
import threading
import time
import typing
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from kbchat.chat.summary_extract import document_sentences
from kbchat.chat.summary_speed import StepTiming, speeds_of
from kbchat.chat.summary_steps import (
    Progress,
    StepRunner,
    extract_steps,
    frame_tokens,
    map_reduce_steps,
    refine_steps,
    step_budget,
)
from kbchat.embed.base import Embedder
from kbchat.errors import BadInput
from kbchat.llm.base import ChatModel
from kbchat.options import SummaryStrategyName
from kbchat.text import Language, detect_language
from kbchat.types import Usage

Strategy = SummaryStrategyName
STRATEGIES: tuple[Strategy, ...] = typing.get_args(SummaryStrategyName)
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
    runner = StepRunner(model, options, language, cancel)
    count = runner.count
    has_embedder = embedder is not None
    strategy = choose_strategy(model, texts, options, has_embedder=has_embedder, count=count)
    estimate = estimate_seconds(model, texts, strategy, options, count=count)
    yield Progress("plan", 0, 0, f"{strategy}, about {estimate:.0f} s", estimated_s=estimate)
    final_tokens = options.max_tokens
    if strategy == "extract":
        if embedder is None:
            raise BadInput("the extract strategy needs an embedder")
        final = yield from extract_steps(runner, texts, embedder)
        final_tokens = min(options.max_tokens, options.extract_max_tokens)
    elif strategy == "refine":
        final = yield from refine_steps(runner, texts)
    else:
        final = yield from map_reduce_steps(runner, texts)
    text = yield from runner.stream(final, final_tokens)
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
    frame = frame_tokens(model)
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
