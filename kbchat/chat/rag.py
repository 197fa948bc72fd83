"""Knowledge-base chat: rewrite a follow-up, retrieve, prompt within the context window,
stream the answer, and tie it to its sources with numbered citations.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Annotated

from pydantic import Field

from kbchat.chat.answer_kinds import kind_conflict
from kbchat.chat.answer_log import AnswerTrace, logged
from kbchat.chat.answerable import (
    SENTENCE_ENDS,
    as_written,
    evidence,
    focus,
    split_sentences,
    support,
)
from kbchat.chat.answerable import options as choices
from kbchat.chat.comparisons import PICKS, comparison_conflict, dated
from kbchat.chat.contrasts import contrast_conflict
from kbchat.chat.follow_up import FOLLOW_UP, standalone_question
from kbchat.chat.grounding import (
    check_claims,
    content_words,
    items,
    missing_items,
    normalise,
    occurs,
    sentences,
    unwrapped,
    without_markers,
)
from kbchat.chat.memory import fit_history, truncate_to_tokens
from kbchat.chat.quantities import unit_conflict
from kbchat.chat.subjects import other_subject
from kbchat.chat.translations import without_translations
from kbchat.errors import BadInput
from kbchat.kb.knowledge_base import KnowledgeBase
from kbchat.llm.base import ChatModel, estimate_prompt_tokens
from kbchat.options import AnswerOptions, OptionError, Share
from kbchat.prompts import render, template
from kbchat.retrieve.search import Reranker, Retrieval, SearchOptions, retrieve
from kbchat.store.bm25 import tokenize
from kbchat.text import FAQ_QUESTION, Language, detect_language
from kbchat.types import Answer, Citation, Delta, Hit, Message, Usage

ChatEvent = str | Answer  # text deltas, then one Answer

_MARKER = re.compile(r"\[(\d{1,2})\]")
_REFUSALS = ("资料中没有找到答案", "do not contain the answer", "does not contain the answer")
MIN_OVERLAP = 0.2
"""Share of the answer's words a passage must hold to be cited when the model cited nothing."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatOptions(AnswerOptions):
    """How to answer: the ``[chat]`` settings plus what only a request sets.

    Validated on construction against the option types (``kbchat.options``).
    """

    search: SearchOptions = field(default_factory=SearchOptions)
    max_question_tokens: Annotated[
        int, Field(ge=1, description="Longer questions are truncated to this many tokens.")
    ] = 1024
    second_try_score: Annotated[
        Share,
        Field(
            description="Ask once more, without the way out, when the model refused over a "
            "passage at least this relevant."
        ),
    ] = 0.7
    stop: tuple[str, ...] = ()
    instructions: str = ""  # the caller's own system prompt, added after kbchat's

    def __post_init__(self) -> None:
        AnswerOptions.__post_init__(self)
        if any(not s for s in self.stop):
            raise OptionError(f"stop sequences must not be empty, got {list(self.stop)!r}")


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
    """Answer ``question`` from ``kbs``: yields text deltas, then the finished Answer.

    Nothing streams before kbchat has decided the passages support an answer: a question
    naming an item no passage holds is declined at once, and the answer's first sentence is
    held back until its claims are found in the passages (``grounding``). A declined
    question gets the no-hit policy (``options.no_hit``) and the closest passages. Passages
    translating one in the question's language are left out (``translations``).
    """
    options = options or ChatOptions()
    search = options.search
    language = detect_language(question)

    def find(query: str) -> Retrieval:
        found = retrieve(kbs, query, search, reranker=reranker)
        if options.search_summaries:
            from kbchat.chat.summary_search import with_summaries

            found = with_summaries(kbs, query, search, found)
        return replace(found, hits=without_translations(found.hits, language, kbs))

    def pending() -> int:
        return sum(kb.stats().get("pending", 0) for kb in kbs)

    return stream_answer_from(
        model,
        find,
        question,
        sources=[kb.name for kb in kbs],
        pending=pending,
        history=history,
        options=options,
        cancel=cancel,
    )


def stream_answer_from(
    model: ChatModel,
    find: Callable[[str], Retrieval],
    question: str,
    *,
    sources: Sequence[str],
    pending: Callable[[], int] = lambda: 0,
    history: Sequence[Message] = (),
    options: ChatOptions | None = None,
    cancel: threading.Event | None = None,
) -> Iterator[ChatEvent]:
    """``stream_answer`` over any search: ``find(query)`` gives the passages (a knowledge
    base, web results ranked by kbchat's embedder, ...), with the same checks and citations.

    Args:
        sources: names for the answer log (knowledge bases, "web").
        pending: files still being indexed, for the decline message.
    """
    options = options or ChatOptions()
    trace = AnswerTrace(kbs=list(sources), mode=options.search.mode)
    events = _answer(model, find, pending, question, history, options, cancel, trace)
    return logged(events, trace)


def _answer(
    model: ChatModel,
    find: Callable[[str], Retrieval],
    pending_files: Callable[[], int],
    question: str,
    history: Sequence[Message],
    options: ChatOptions,
    cancel: threading.Event | None,
    trace: AnswerTrace,
) -> Iterator[ChatEvent]:
    started = time.perf_counter()
    question, notices = checked_question(model, question, options)
    language = detect_language(question)
    standalone = query = question
    if options.rewrite and history and FOLLOW_UP.search(question):
        standalone, query = standalone_question(model, question, history, language)
    retrieved = find(query)
    trace.hits = len(retrieved.hits)
    notices += retrieved.notices
    pending = pending_files()
    timings = {"retrieval_s": time.perf_counter() - started}
    decline = Decline(language, standalone, retrieved.hits, pending, notices)
    if not retrieved.hits:
        yield from _declined(model, question, history, options, decline, timings, started, cancel)
        return
    # A rewritten follow-up stands alone: earlier turns would only distract a small model
    # (it took the sibling product's value from them in the follow-up case).
    context = history if standalone == question else ()
    hits = same_language_first(retrieved.hits, language)
    messages, used = build_messages(model, standalone, hits, context, options, language)
    if options.verify:
        decline.missing = missing_items(standalone, [hit.text for hit in used])
        named = named_hits(find, decline.missing, used) if decline.missing else []
        if named:
            timings["retrieval_s"] = time.perf_counter() - started
            hits = [used[0], *named, *used[1:]]
            messages, used = build_messages(
                model, standalone, hits, context, options, language, keep=len(named) + 1
            )
            decline.missing = missing_items(standalone, [hit.text for hit in used])
        decline.reason = _unsupported_question(standalone, retrieved.hits[0], used, options)
    if decline.missing or decline.reason:
        yield from _declined(model, question, history, options, decline, timings, started, cancel)
        return
    answer = Answer(text="", model=model.name, question=standalone, notices=notices)
    check = _head_check(standalone, used, options) if options.verify else None
    yield from generate(model, messages, options, answer, timings, started, cancel, check=check)
    spent = answer.usage  # every try counts, declined ones too
    if answer.text == MODEL_REFUSED and retrieved.hits[0].score >= options.second_try_score:
        # The 0.5B model often refuses a question its best passage answers plainly ("如何
        # 创建知识库？" over "运行 kbchat kb create manuals 创建…"); asked again without the
        # way out, its answer still has to pass the same checks.
        messages[0] = Message("system", _system(template("rag_system_answer", language), options))
        answer = Answer(text="", model=model.name, question=standalone, notices=notices)
        yield from generate(model, messages, options, answer, timings, started, cancel, check=check)
        spent += answer.usage
    refused = answer.outcome == "refused"
    if (
        refused
        and answer.text.startswith(PICKS)
        and (choice := dated(standalone, [hit.text for hit in used])) is not None
    ):
        # The passages answer a which-came-first question the model got the wrong way
        # round; given the two years it copies the pick, and is judged the same way.
        note = f"{messages[-1].content}\n\n{choice.hint(language)}"
        retry = [*messages[:-1], Message(messages[-1].role, note)]
        answer = Answer(text="", model=model.name, question=standalone, notices=notices)
        yield from generate(
            model, retry, options, answer, timings, started, cancel, check=check, whole=True
        )
        spent += answer.usage
    elif refused and answer.text != MODEL_REFUSED and check is not None:
        focused = _focused(standalone, used, options)
        if focused is not None:
            messages, retry_used = build_messages(
                model, standalone, [focused], context, options, language
            )
            answer = Answer(text="", model=model.name, question=standalone, notices=notices)
            # Judged whole: after an opening with nothing to check ("you can follow these
            # steps:") the model invented the steps of a how-to the excerpt did not hold.
            yield from generate(
                model, messages, options, answer, timings, started, cancel, check=check, whole=True
            )
            spent += answer.usage
            used = retry_used
    answer.usage = spent
    if answer.outcome == "refused":
        decline.reason = answer.text
        decline.spent = spent
        yield from _declined(model, question, history, options, decline, timings, started, cancel)
        return
    extra = _attribute(answer, used)
    if extra:
        yield extra
    answer.timings = {k: round(v, 4) for k, v in timings.items()}
    yield answer


SAME_LANGUAGE_MARGIN = 0.35
"""A passage in the question's language goes before better-scored ones in another language
within this much relevance: the model answers from the first passage, in its language."""


def same_language_first(hits: Sequence[Hit], language: Language) -> list[Hit]:
    """``hits`` with those in ``language`` moved before other-language hits that score less
    than ``SAME_LANGUAGE_MARGIN`` more (order kept otherwise). On a bilingual knowledge base
    the Chinese copy of a short FAQ entry outscored the English one for an English question,
    and the answer came in Chinese."""
    if not hits:
        return []
    ordered: list[Hit] = []
    waiting: list[Hit] = []  # other-language hits not yet placed
    for hit in hits:
        if hit.language == language:
            ordered += [w for w in waiting if w.score - hit.score >= SAME_LANGUAGE_MARGIN]
            waiting = [w for w in waiting if w.score - hit.score < SAME_LANGUAGE_MARGIN]
            ordered.append(hit)
        else:
            waiting.append(hit)
    return ordered + waiting


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


def build_messages(
    model: ChatModel,
    question: str,
    hits: Sequence[Hit],
    history: Sequence[Message],
    options: ChatOptions,
    language: Language,
    *,
    keep: int = 1,
) -> tuple[list[Message], list[Hit]]:
    """The prompt, fitted to the context window: system, history, sources + question.

    Sources go in rank order until ``options.context_tokens`` or the context window is
    spent (the last one may be cut), skipping those below ``options.source_ratio`` of the
    best score except the first ``keep`` (found by searches of their own, their scores do
    not compare); the answer's ``max_tokens`` is always reserved. Returns the messages and
    the hits used.
    """
    system = _system(template("rag_system", language), options)
    count = model.count_tokens
    frame = render("rag_user", language, context="", question=question)
    budget = model.context_window - options.max_tokens - count(system) - count(frame) - 64
    kept_history = fit_history(history, min(options.history_tokens, budget // 3), count)
    budget -= sum(count(m.content) + 4 for m in kept_history)
    budget = min(budget, options.context_tokens)
    floor = max(hit.score for hit in hits) * options.source_ratio if hits else 0.0
    blocks: list[str] = []
    used: list[Hit] = []
    for hit in hits:
        if len(used) >= keep and hit.score < floor:
            continue
        block = f"[{len(used) + 1}] {_source_label(hit)}\n{passage_body(hit)}"
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
    """Where the passage is, its section path included: (file p.N — heading › subheading)."""
    where = f" p.{hit.page}" if hit.page else f" [{hit.sheet}]" if hit.sheet else ""
    section = f" — {' › '.join(hit.headings)}" if hit.headings else ""
    return f"({hit.file}{where}{section})"


def passage_body(hit: Hit) -> str:
    """``hit.text`` without the heading lines it starts with (its label names them): over
    "快速入门\n创建知识库\n运行 kbchat kb create manuals …" the 0.5B model answered "如何创建
    知识库？" with the heading "创建知识库", then with a refusal; with the headings in the
    label it answered with the command."""
    lines = hit.text.split("\n")
    headings = {heading.strip() for heading in hit.headings}
    start = 0
    while start < len(lines) - 1 and (not lines[start].strip() or lines[start].strip() in headings):
        start += 1
    return "\n".join(lines[start:]) if start else hit.text


MODEL_REFUSED = "the model found no answer in the sources"
HeadCheck = Callable[[str, bool], str | None]
"""Judges the held-back start of an answer (and whether it is the whole answer): None to
release it, or why it is declined."""
REPEATED_QUESTION = "the answer only repeats the question"
ECHO_WORDS = 1
"""An answer of at least this many content words, all of them the question's, says nothing
new: the 0.5B model copies a FAQ's question line ("扫描版 PDF 检索不到任何内容怎么办？ [3]"),
or one word of the question ("北京冬奥会男子500米速度滑冰金牌" answered "金牌", rgb_zh dev).
A bare "Yes." or "No." has none and is not an echo."""
HEAD_CHARS = 200
HEAD_MIN_CHARS = 100
MIN_HEAD_WORDS = 6
"""The answer's start held back for ``HeadCheck``: up to the first sentence end after
``HEAD_MIN_CHARS`` characters, at most ``HEAD_CHARS`` (a short answer is checked whole).
An opening like "To create a knowledge base, use this command:" says nothing to check."""
_HEAD_END = re.compile(r"[。！？!?\n]|\.(\s|$)")


def generate(
    model: ChatModel,
    messages: list[Message],
    options: ChatOptions,
    answer: Answer,
    timings: dict[str, float],
    started: float,
    cancel: threading.Event | None,
    *,
    check: HeadCheck | None = None,
    whole: bool = False,
) -> Iterator[str]:
    """Stream the model's answer into ``answer``; yields its text deltas.

    With ``check``, the answer's start (``HEAD_CHARS``) is held back and judged first, or
    with ``whole`` all of it; a declined answer stops generating, yields nothing, and ends
    with ``answer.outcome`` "refused" and the reason as ``answer.text``.
    """
    parts: list[str] = []
    held = check is not None
    stream = model.stream(
        messages,
        temperature=options.temperature,
        max_tokens=options.max_tokens,
        stop=options.stop,
        cancel=cancel,
    )
    try:
        for delta in stream:
            _finish(answer, delta)
            if not delta.text:
                continue
            parts.append(delta.text)
            if held:
                text = "".join(parts)
                if whole or not _head_complete(text):
                    continue
                held = False
                if (reason := check(text, False)) is not None:  # type: ignore[misc]
                    _stopped(answer, reason, model, messages, text)
                    return
                delta_text = text
            else:
                delta_text = delta.text
            if "ttft_s" not in timings:
                timings["ttft_s"] = time.perf_counter() - started
            yield delta_text
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()
    if held and parts and check is not None:
        if (reason := check("".join(parts), True)) is not None:
            _stopped(answer, reason, model, messages, "".join(parts))
            return
        timings["ttft_s"] = time.perf_counter() - started
        yield "".join(parts)
    answer.text = "".join(parts)
    timings["total_s"] = time.perf_counter() - started
    timings.setdefault("ttft_s", timings["total_s"])
    if answer.finish_reason == "length":
        answer.notices.append(f"the answer was cut at max_tokens ({options.max_tokens})")


def _stopped(
    answer: Answer, reason: str, model: ChatModel, messages: Sequence[Message], written: str
) -> None:
    """Mark ``answer`` declined for ``reason``; a stream stopped before its last delta gave
    no usage, so the tokens are counted here (the model read the prompt and wrote ``written``)."""
    answer.outcome, answer.text = "refused", reason
    if answer.usage.total_tokens == 0:
        prompt = estimate_prompt_tokens(model, messages)
        answer.usage = Usage(prompt, model.count_tokens(written))


def named_hits(
    find: Callable[[str], Retrieval], missing: Sequence[str], used: Sequence[Hit]
) -> list[Hit]:
    """Passages holding items the question names that the passages found lack, from a
    search for those items: at most one per item, best first, none already used.

    A multi-hop question names the subject of its second hop ("the game which contains
    Chocobos and Moogles"), whose passage shares few words with the question as a whole
    and is often not among its hits; a search for the names alone finds it. Whether the
    passages then support an answer is decided as for any other (``_unsupported_question``),
    so a name found only in unrelated passages declines as before.
    """
    seen = {hit.chunk_id for hit in used}
    found: list[Hit] = []
    for hit in find(" ".join(missing)).hits:
        text = normalise(hit.text)
        if hit.chunk_id in seen or not any(occurs(item, text) for item in missing):
            continue
        found.append(hit)
        seen.add(hit.chunk_id)
        missing = [item for item in missing if not occurs(item, text)]
        if not missing:
            break
    return found


def _focused(question: str, used: Sequence[Hit], options: ChatOptions) -> Hit | None:
    """The passage for a second try at a declined answer: the place holding most of the
    question's key terms (``answerable.focus``), as a hit of its own, or None when that place
    holds under ``chat.min_coverage`` of them (an answer read from it would be declined too),
    less than two passages hold together (a multi-hop question: one place lacks a hop), or
    is the whole of the only passage (the model saw nothing else).

    The answer is judged by the same checks against every passage first given. On the dev
    sets, 8 of 9 cmrc2018 and 9 of 11 HotpotQA answers declined at the first try were wrong:
    the model had read a neighbouring sentence of a long passage. With the second try,
    cmrc2018 dev (30 + 30): 5 more right answers, 3 fewer unanswerable questions declined.
    On HotpotQA a retry over one place of a two-passage question answered wrong (3 of 4).
    """
    language = detect_language(question)
    same = [hit for hit in used if hit.language == language]
    texts = [hit.text for hit in same]
    found = focus(question, texts)
    if found is None or found.share < max(options.min_coverage, evidence(question, texts).share):
        return None
    hit = same[found.index]
    if len(same) == 1 and found.excerpt.strip() == hit.text.strip():
        return None
    return replace(hit, text=found.excerpt)


def _unsupported_question(
    question: str, best: Hit, used: Sequence[Hit], options: ChatOptions
) -> str:
    """Why the passages cannot answer ``question`` before the model runs, or "": the best
    passage is weak (``_weak``) and no place holds every key term of the question (two or
    more), or no place in the passages holds ``min_evidence`` of its key terms
    (``answerable.evidence``). A passage in another language counts for the words it shares
    with the question (codes, names: "What is the CADR of the X100?" over a Chinese manual),
    but only beside one in the question's language: with none, ``min_score_cross`` decides.

    A place holding every key term outweighs a weak score: a short file's one chunk holds
    many facts, and "Who will book the venue?" scored 0.39 over "... Lina will book the
    venue. ...". On the dev sets (30 + 30 per set) this let one answerable question through
    and no unanswerable one.
    """
    language = detect_language(question)
    same = any(hit.language == language for hit in used)
    found = evidence(question, [hit.text for hit in used]) if same else None
    held = found is not None and len(found.terms) >= _HELD_TERMS and found.share == 1.0
    if _weak(best, language, options) and not held:
        return f"the best passage scores {best.score:.2f}, below chat.min_score"
    if found is None:
        return ""  # key terms are words of one language: min_score_cross decides
    if found.share < options.min_evidence:
        absent = ", ".join(as_written(term, question) for term in found.absent[:5])
        return (
            f"the closest passage holds {found.share:.0%} of the question's key terms "
            f"(chat.min_evidence {options.min_evidence:.0%}); it lacks {absent}"
        )
    return ""


_HELD_TERMS = 2
"""Key terms a question needs before one place holding all of them outweighs a weak score."""


def _weak(best: Hit, language: Language, options: ChatOptions) -> bool:
    """True when the best passage is below the bar for answering: ``min_score`` in the
    question's language, ``min_score_cross`` in another (cross-lingual relevance runs
    lower: English questions' Chinese gold passages scored 0.4-0.55 on the dev set)."""
    same = best.language == language
    return best.score < (options.min_score if same else options.min_score_cross)


def _head_complete(text: str) -> bool:
    stripped = text.strip()
    return len(stripped) >= HEAD_CHARS or (
        len(stripped) >= HEAD_MIN_CHARS
        and _HEAD_END.search(stripped, HEAD_MIN_CHARS - 1) is not None
    )


def _head_check(question: str, used: Sequence[Hit], options: ChatOptions) -> HeadCheck:
    """The check of an answer's start against the passages it was given."""
    # The source labels ("[1] (settings.xlsx)") are in the prompt: naming them is no invention.
    passages = [f"{hit.file}\n{hit.text}" for hit in used]
    texts, files = [hit.text for hit in used], [hit.file for hit in used]
    language = detect_language(question)
    same = [hit.text for hit in used if hit.language == language]

    def check(head: str, whole: bool) -> str | None:
        if any(refusal in head for refusal in _REFUSALS):
            return MODEL_REFUSED
        if whole and _repeats(head, question):
            return REPEATED_QUESTION
        claims = check_claims(head, question, passages)
        if claims.unsupported:
            named = ", ".join(claims.unsupported)
            return f"the answer states {named}, which the sources do not contain"
        if (conflict := unit_conflict(head, question, passages)) is not None:
            return conflict
        if (conflict := contrast_conflict(head, question, passages)) is not None:
            return conflict
        if (conflict := comparison_conflict(head, question, texts)) is not None:
            return conflict
        if (other := other_subject(head, question, texts, files)) is not None:
            about = f" on {other.about}" if other.about else ""
            return (
                f"the answer comes from {files[other.index]}{about}, which does not mention "
                f"{other.asked}, the subject of the question"
            )
        if whole and (conflict := kind_conflict(head, question)) is not None:
            return conflict  # judged whole: a long answer may name the place later
        # An opening ("To create one, use this command:") has too few words to judge.
        enough = claims.words >= (1 if whole else MIN_HEAD_WORDS)
        if enough and claims.support < options.min_support:
            return (
                f"only {claims.support:.0%} of the answer's new words are in the sources "
                f"(chat.min_support {options.min_support:.0%})"
            )
        if options.min_coverage <= 0 or not same or detect_language(head) != language:
            return None  # an answer in another language is not found by its words
        coverage = support(head, question, same)
        if coverage < options.min_coverage:
            return (
                f"the passage the answer comes from holds {coverage:.0%} of the question's "
                f"key terms (chat.min_coverage {options.min_coverage:.0%})"
            )
        return None

    return check


_YES_NO = re.compile(
    r"^\s*(?:is|are|was|were|do|does|did|can|could|will|would|should|shall|has|have|had|may"
    r"|might|must)\b|(?:吗|是否|是不是|有没有|能否|可否)",
    re.IGNORECASE,
)
"""A yes-or-no question: an answer restating it as a statement affirms it."""


def _repeats(answer: str, question: str) -> bool:
    """True when ``answer`` holds ``ECHO_WORDS`` or more content words and every one of them
    is the question's, and the question is not a yes-or-no one ("Are returns accepted within
    30 days?" is answered "Returns are accepted within 30 days.") or a choice ("Who won an
    award first, the Brothers Quay or Alexandra Shiva?" is answered by naming one).

    Only the question's asking sentences count (those ending in a question mark, or all of
    it when none does): what the user states beside them ("I read the warranty is two years.
    How long is it?", "……是多少？请回答：额定功率为2.2千瓦。") the answer may confirm."""
    if _YES_NO.search(question) or choices(question):
        return False
    said = content_words(without_markers(answer))
    asking = [part for part in split_sentences(question) if part.endswith(("?", "？"))]
    asked = set(content_words(" ".join(asking) or question))
    return len(said) >= ECHO_WORDS and all(word in asked or _DEICTIC.match(word) for word in said)


_DEICTIC = re.compile(r"^[这那该此本其][个场次些种位项件年月天部首座条家所]?$")
"""A word pointing back ("这场", "该"): it adds nothing to the question's words. A sentence
copied from the passage, "韦比在这场比赛中出示三面红牌。", does not say which match."""


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
    said = without_markers(answer.text)
    answer_tokens = set(tokenize(said))
    answer_items = _new_items(said, answer.question)
    markers = sorted({int(m) for m in _MARKER.findall(answer.text) if 1 <= int(m) <= len(used)})
    appended = ""
    if not markers:
        # The passages holding most of the answer's items (numbers, codes, names), then
        # reusing most of its words (ties: the better-ranked one).
        scored = sorted(
            (
                (_held(answer_items, hit.text), _overlap(answer_tokens, hit.text), -n)
                for n, hit in enumerate(used, 1)
            ),
            reverse=True,
        )
        top_held, top_overlap, _ = scored[0]
        markers = sorted(
            -n
            for held, overlap, n in scored[:2]
            if held == top_held and overlap >= MIN_OVERLAP and overlap >= 0.8 * top_overlap
        )
        if markers:
            appended = " " + "".join(f"[{n}]" for n in markers)
            answer.text += appended
    answer.citations = [_citation(n, used[n - 1], said, answer.question) for n in markers]
    answer.grounded = bool(markers)
    if not markers:
        answer.notices.append(UNCITED)
    return appended


UNCITED = "no passage could be matched to this answer (it cites none): check it against the sources"
"""Said beside an answer that passed the checks but shares no words with any passage: an
answer in another language than its passages ("3年" over "three years") is not attributed."""


def _overlap(answer_tokens: set[str], passage: str) -> float:
    if not answer_tokens:
        return 0.0
    return len(answer_tokens & set(tokenize(passage))) / len(answer_tokens)


def _new_items(said: str, asked: str) -> list[str]:
    """The items (numbers, codes, names) ``said`` names that ``asked`` does not: what an
    answer adds to its question."""
    question = normalise(asked)
    return [item for item in items(said) if not occurs(item, question)]


def _held(answer_items: Sequence[str], passage: str) -> int:
    """How many of ``answer_items`` occur in ``passage``."""
    text = normalise(passage)
    return sum(occurs(item, text) for item in answer_items)


def _citation(marker: int, hit: Hit, said: str, asked: str = "") -> Citation:
    """The citation of ``hit`` for ``said`` (an answer to ``asked``, or the question of a
    refusal).

    Its quote is the passage's sentence holding most of the items ``said`` adds to
    ``asked`` (numbers, codes, names), then most of the words of ``said``'s first sentence
    (its direct answer), then of all of ``said``, the words ``asked`` lacks before the
    others; each word weighted by 1 / the number of the passage's sentences holding it. For
    "The Zephyr-9 is rated at 1800 W" the sentence giving "1800 W", not the warranty
    sentence that repeats "Zephyr-9"; for "文档和问题都支持中文和英文。由于向量模型是多语言的，
    ……" the first, not the longer second; for an answer restating its question, a FAQ's
    answer line, not its question line."""
    candidates = sentences(unwrapped(passage_body(hit))) or [hit.text]
    # a FAQ's question lines only ask: its answer lines say what the passage holds
    candidates = [c for c in candidates if not FAQ_QUESTION.match(c)] or candidates
    said_items = _new_items(said, asked)
    lead = split_sentences(without_markers(said))
    first = set(tokenize(lead[0])) if lead else set()
    wanted = set(tokenize(said))
    new = wanted - set(tokenize(asked))
    held = [wanted & set(tokenize(sentence)) for sentence in candidates]
    spread = Counter(token for tokens in held for token in tokens)

    def weight(index: int) -> tuple[int, float, float, float, float, bool]:
        def total(words: set[str]) -> float:
            return sum(1 / spread[token] for token in held[index] & words)

        items = _held(said_items, candidates[index])
        # on a tie (often: nothing in common), a whole sentence before a title line
        whole = candidates[index].rstrip().endswith(SENTENCE_ENDS)
        return items, total(first & new), total(new), total(first), total(wanted), whole

    quote = candidates[max(range(len(candidates)), key=weight)]
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


@dataclass(slots=True)
class Decline:
    """Why a question gets the no-hit policy instead of an answer from the passages.

    Attributes:
        language: the question's language (of the message shown).
        question: the standalone question searched for.
        hits: the passages found (maybe none); the best are shown as ``closest``.
        pending: files of the knowledge bases still waiting to be indexed.
        notices: what the caller should know so far (a truncated question...).
        missing: items the question names that no passage holds.
        reason: why the question was declined, for the notices (a weak best passage, or
            what ``HeadCheck`` found in the answer's start).
        spent: tokens of the answers the model wrote and the checks declined.
    """

    language: Language
    question: str
    hits: list[Hit]
    pending: int = 0
    notices: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    reason: str = ""
    spent: Usage = field(default_factory=Usage)

    def message(self, options: ChatOptions) -> str:
        """The refusal shown to the user."""
        if options.no_hit_message:
            return options.no_hit_message
        if not self.hits and self.pending:
            return render("still_indexing", self.language, count=str(self.pending))
        lines = [template("no_answer" if not self.hits else "not_supported", self.language)]
        if self.missing:
            quoted = ", ".join(f"“{item}”" for item in self.missing)
            lines.append(render("missing_items", self.language, items=quoted))
        if self.pending:
            lines.append(render("still_indexing", self.language, count=str(self.pending)))
        return "\n".join(lines)


CLOSEST = 3
"""Passages shown beside a refusal or a fallback answer."""


def _declined(
    model: ChatModel,
    question: str,
    history: Sequence[Message],
    options: ChatOptions,
    decline: Decline,
    timings: dict[str, float],
    started: float,
    cancel: threading.Event | None,
) -> Iterator[ChatEvent]:
    """The no-hit policy: a refusal (or fixed message), or the model's own answer labelled
    as such; either way with the closest passages found. ``started``: when the question
    came (``time.perf_counter``), so timings cover any answer tried and declined."""
    notices = decline.notices
    language = decline.language
    answer = Answer(text="", model=model.name, question=decline.question, grounded=False)
    answer.notices = notices
    answer.closest = [
        _citation(n, hit, decline.question) for n, hit in enumerate(decline.hits[:CLOSEST], 1)
    ]
    if decline.missing:
        answer.notices.append("declined: the sources do not mention " + ", ".join(decline.missing))
    elif decline.reason:
        answer.notices.append(f"declined: {decline.reason}")
    if decline.pending:
        answer.notices.append(f"still indexing {decline.pending} file(s)")
    if options.no_hit == "fallback":
        answer.outcome = "fallback"
        label = template("fallback_label", language) + "\n"
        yield label
        messages = [
            Message("system", _system(template("chat_system", language), options)),
            *fit_history(history, options.history_tokens, model.count_tokens),
            Message("user", question),
        ]
        yield from generate(model, messages, options, answer, timings, started, cancel)
        answer.text = label + answer.text
        answer.usage = decline.spent + answer.usage
    else:
        answer.outcome = "refused"
        answer.text = decline.message(options)
        answer.usage = decline.spent
        yield answer.text
        timings["ttft_s"] = timings["total_s"] = time.perf_counter() - started
    answer.timings = {k: round(v, 4) for k, v in timings.items()}
    yield answer
