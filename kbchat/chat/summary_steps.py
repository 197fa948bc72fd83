"""The model calls of one summary: a runner that times them and adds up their usage, and
the steps of each strategy (map-reduce, refine, extract), each returning the prompt of the
final, streamed pass (``kbchat.chat.summarize`` drives them).

Every call is fitted to the model's context window (``step_budget``): a step reads at most
``context_window - output tokens - prompt`` tokens of text, so nothing overflows however
long the document is.
"""

from __future__ import annotations

import functools
import math
import re
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kbchat.chat.memory import truncate_to_tokens
from kbchat.chat.summary_extract import central_sentences, document_sentences, sentence_vectors
from kbchat.chat.summary_speed import StepTiming, speeds_of
from kbchat.embed.base import Embedder
from kbchat.errors import BadInput
from kbchat.llm.base import FINISH_LENGTH, ChatModel
from kbchat.prompts import render, template
from kbchat.text import CLOSING_MARKS, Language
from kbchat.types import Message, Usage

if TYPE_CHECKING:  # the options are defined with the driver, which imports this module
    from kbchat.chat.summarize import SummaryOptions

_MARGIN = 64
Steps = Generator["Progress", None, list[Message]]
"""A strategy's steps: progress as they run, then the final pass's prompt."""


_SENTENCE_END = re.compile(f"[。！？!?][{CLOSING_MARKS}]*|\\.[{CLOSING_MARKS}]*(?=\\s|$)")


def whole_sentences(text: str) -> str:
    """``text`` up to its last sentence end (all of it if it has none): a summary cut off
    by max_tokens does not end mid-sentence."""
    ends = [m.end() for m in _SENTENCE_END.finditer(text.rstrip())]
    return text[: ends[-1]] if ends else text


@dataclass(frozen=True, slots=True)
class Progress:
    """A step of a summary: ``stage`` (plan, map, combine, refine, extract), steps done/total."""

    stage: str
    done: int
    total: int
    message: str = ""
    estimated_s: float = 0.0


def step_budget(model: ChatModel, options: SummaryOptions) -> int:
    """Tokens of document text one model call may read (never overflows the context)."""
    room = (
        model.context_window
        - max(options.max_tokens, options.step_tokens)
        - frame_tokens(model)
        - _MARGIN
        - options.step_tokens  # refine also carries the summary so far
    )
    if room < 200:
        raise BadInput(
            f"the model's context window ({model.context_window} tokens) is too small to "
            "summarise in; raise n_ctx or lower max_tokens"
        )
    return min(room, options.max_step_input)


def frame_tokens(model: ChatModel) -> int:
    """Tokens of the longest summary prompt without its text, with the system message a
    framed prompt carries."""
    return max(
        model.count_tokens(template(name, lang))
        for name in ("summarize_part", "summarize_refine", "summarize_whole", "summarize_extract")
        for lang in ("en", "zh")
    ) + max(model.count_tokens(template("summarize_system", lang)) for lang in ("en", "zh"))


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


class StepRunner:
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

    def prompt(self, name: str, *, framed: bool = False, **values: str) -> list[Message]:
        """The messages of one call: ``name`` rendered with ``values``; ``framed``: the
        template puts the text in <document> tags, and a system message says the text is
        material, not instructions (a book of prompt formulas had its extract answered
        with one of its own prompts: "在以下故事中生成以下角色之间的对话。")."""
        user = Message("user", render(name, self.language, **values))
        if not framed:
            return [user]
        return [Message("system", template("summarize_system", self.language)), user]

    def step(self, stage: str, messages: list[Message]) -> str:
        """One intermediate call, to the end."""
        return "".join(self._call(stage, messages, self.options.step_tokens)).strip()

    def stream(self, messages: list[Message], max_tokens: int) -> Generator[str, None, str]:
        """The final call, streamed a sentence at a time; returns the text it gave.

        A call cut at ``max_tokens`` gives only its whole sentences (``whole_sentences``):
        what streams is what is kept, never a summary that stops mid-word.
        """
        parts: list[str] = []
        shown = 0
        for text in self._call("final", messages, max_tokens):
            parts.append(text)
            written = "".join(parts)
            # an end with text after it cannot move: the next character is not a closing mark
            ends = [m.end() for m in _SENTENCE_END.finditer(written, shown)]
            end = max((e for e in ends if e < len(written)), default=shown)
            if end > shown:
                yield written[shown:end]
                shown = end
        written = "".join(parts)
        kept = whole_sentences(written) if self.finish_reason == FINISH_LENGTH else written
        if len(kept) > shown:
            yield kept[shown:]
        return kept

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
            self.usage += usage
            self.timings.append(timing)
            self.finish_reason = finish

    def _check_cancel(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise BadInput("the summary was stopped")


def map_reduce_steps(runner: StepRunner, texts: list[str]) -> Steps:
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


def _map(runner: StepRunner, parts: list[str], stage: str) -> Generator[Progress, None, list[str]]:
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


def refine_steps(runner: StepRunner, texts: list[str]) -> Steps:
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


def extract_steps(runner: StepRunner, texts: list[str], embedder: Embedder) -> Steps:
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
    return runner.prompt("summarize_extract", framed=True, text="\n".join(picked))
