"""Answer benchmark: kbchat beside a naive RAG pipeline, on answerable and unanswerable questions.

Usage::

    python bench/answer.py --split dev --limit 30                      # tune
    python bench/answer.py --split test --limit 60                     # report
    python bench/answer.py --split dev --limit 10 --sets rgb_zh --systems kbchat

Question sets and knowledge bases come from ``bench/unanswerable.py``: per set (cmrc2018_zh,
hotpotqa_en, rgb_zh; rgb_zh has a dev split only) an answerable half asked of a KB holding the
gold passages, and an unanswerable half asked of a KB holding the same topics without them.
Systems, asked the same questions in turn (so shared-machine load hits both alike):

- ``kbchat``: exactly what ``kbchat ask`` does: ``stream_answer`` with the chat options and
  reranker from the settings, on KBs built with the default embedder and chunking.
- ``naive``: the script a user would write first: mE5-small (``e5``) dense top-5 of
  500-character chunks (overlap 50, our splitter), no threshold, and a plain prompt that tells
  the model to answer from the passages or say it does not know; the same model, temperature
  and ``max_tokens`` as kbchat.

Per set and system: accuracy and false refusals on the answerable questions, the share of
unanswerable ones declined, and median time to first token (seconds, from the question to the
first streamed character; retrieval included). A decline is read as ``kbchat eval answers``
reads it (``kbchat.eval.answers``): the ``refused`` flag, else a refusal phrase in the text.
Per set, ``declined_drafts`` lists what the model had written when kbchat declined it after
generation began (never shown to a user), and whether that draft held a gold answer: a false
refusal of a wrong draft cost no accuracy.
KBs are cached in ``bench/.cache`` under a digest of their passages, so a re-run only answers.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from retrieval import CACHE, BenchLibrary, Progress, code_version
from unanswerable import SETS, Half, QuestionSet, load_sets

from kbchat.app import Services
from kbchat.chat.rag import ChatOptions, stream_answer
from kbchat.config import load_settings
from kbchat.eval.answers import AnswerReport, AnswerResult, answer_is_correct, score_answer
from kbchat.eval.retrieval import EvalQuery, parse_query
from kbchat.kb.knowledge_base import KnowledgeBase
from kbchat.llm.base import ChatModel, complete
from kbchat.options import answer_search_options, chat_options
from kbchat.retrieve.search import SearchOptions, search
from kbchat.runtime import configure_process
from kbchat.text import Language, detect_language
from kbchat.types import Answer, Message

SYSTEMS = ("kbchat", "naive")
NAIVE_EMBEDDER = "e5"
NAIVE_CHUNKING = (500, 50)
NAIVE_TOP_K = 5
NAIVE_PROMPT: dict[Language, str] = {
    "zh": "请根据下面的资料回答问题。如果资料中没有答案，就回答“我不知道”。\n\n"
    "资料：\n{passages}\n\n问题：{question}\n回答：",
    "en": "Answer the question using the passages below. If the passages do not contain the "
    'answer, say "I don\'t know".\n\nPassages:\n{passages}\n\nQuestion: {question}\nAnswer:',
}
AnswerFn = Callable[[str], Answer]


def naive_answer(
    model: ChatModel, kb: KnowledgeBase, question: str, *, options: ChatOptions
) -> Answer:
    """Dense top-5, the plain prompt, one streamed generation; TTFT counts from the question."""
    started = time.perf_counter()
    naive = SearchOptions(top_k=NAIVE_TOP_K, mode="dense", threshold=0.0, dedupe=False)
    hits = search([kb], question, naive)
    passages = "\n\n".join(f"[{n}] {hit.text}" for n, hit in enumerate(hits, 1))
    prompt = NAIVE_PROMPT[detect_language(question)].format(passages=passages, question=question)
    parts: list[str] = []
    ttft = None
    for delta in model.stream(
        [Message("user", prompt)], temperature=options.temperature, max_tokens=options.max_tokens
    ):
        if delta.text:
            ttft = ttft if ttft is not None else time.perf_counter() - started
            parts.append(delta.text)
    total = time.perf_counter() - started
    timings = {"ttft_s": ttft if ttft is not None else total, "total_s": total}
    return Answer(text="".join(parts), model=model.name, question=question, timings=timings)


class Recording:
    """A chat model that keeps the text of its last stream: the draft kbchat declined (never
    shown to a user, so never in the Answer) is what the bench needs to tell a refusal that
    cost a right answer from one that stopped a wrong one."""

    def __init__(self, model: ChatModel) -> None:
        self.model = model
        self.last: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)

    def stream(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        self.last = []
        for delta in self.model.stream(*args, **kwargs):
            if delta.text:
                self.last.append(delta.text)
            yield delta


def kbchat_answer(
    services: Services,
    model: ChatModel,
    kb: KnowledgeBase,
    options: ChatOptions,
    drafts: dict[str, str],
) -> AnswerFn:
    """``kbchat ask``: the settings' chat options and reranker. The draft of an answer
    declined after the model wrote it goes to ``drafts`` (question -> text)."""
    recording = Recording(model)

    def answer(question: str) -> Answer:
        recording.last = []
        events = stream_answer(
            recording,  # type: ignore[arg-type]
            [kb],
            question,
            options=options,
            reranker=services.reranker(),
        )
        final = [e for e in events if isinstance(e, Answer)]
        if not final:
            raise RuntimeError(f"no answer for {question!r}")
        if final[-1].refused and recording.last:
            drafts[question] = "".join(recording.last)
        return final[-1]

    return answer


def half_kb(
    library: BenchLibrary, built: QuestionSet, half: str, embedder: str, chunking: tuple[int, int]
) -> KnowledgeBase:
    """The KB one system asks one half of a set, built once per passage content and cached."""
    part: Half = getattr(built, half)
    digest = hashlib.blake2b(digest_size=4)
    for pid in sorted(part.passages):
        digest.update(f"{pid}\0{part.passages[pid].file_text()}\0".encode())
    tag = f"{built.name}-{half}-{digest.hexdigest()}"
    folder = CACHE / "answer-passages" / tag
    if not (folder / ".complete").exists():
        part.write(folder)
        (folder / ".complete").touch()
    size, overlap = chunking
    name = f"answer-{tag}-{embedder.replace('+', '_')}-{size}-{overlap}"
    kb = library.ensure(name, embedder=embedder, chunk_size=size, chunk_overlap=overlap)
    marker = kb.directory / "bench-complete"
    if not marker.exists():
        print(f"building {name} ({len(part.passages)} passages) ...", file=sys.stderr)
        outcomes = kb.add([folder / "passages"], listener=Progress(name))
        if any(o.status == "failed" for o in outcomes):
            raise RuntimeError(f"{name}: some passages failed to index")
        marker.touch()
    return kb


def questions_of(part: Half) -> list[EvalQuery]:
    return [parse_query(json.dumps(row, ensure_ascii=False)) for row in part.questions]


def run_set(
    services: Services, built: QuestionSet, systems: Sequence[str], options: ChatOptions
) -> dict[str, Any]:
    """Both halves of one set through every system; a summary and the rows per system."""
    library = services.library
    assert isinstance(library, BenchLibrary)
    model = services.models.get(None)
    settings = services.settings
    kbchat_chunking = (settings.ingest.chunk_size, settings.ingest.chunk_overlap)
    rows: dict[str, list[AnswerResult]] = {s: [] for s in systems}
    drafts: dict[str, str] = {}
    draft_rows: list[dict[str, Any]] = []
    sizes: dict[str, int] = {}
    for half in ("answerable", "unanswerable"):
        part: Half = getattr(built, half)
        sizes[half] = len(part.passages)
        answer_fns: dict[str, AnswerFn] = {}
        for system in systems:
            if system == "kbchat":
                kb = half_kb(library, built, half, settings.embedder.backend, kbchat_chunking)
                answer_fns[system] = kbchat_answer(services, model, kb, options, drafts)
            else:
                kb = half_kb(library, built, half, NAIVE_EMBEDDER, NAIVE_CHUNKING)
                answer_fns[system] = functools.partial(naive_answer, model, kb, options=options)
            search([kb], "warm-up", SearchOptions())  # load the indexes outside the timings
        for query in questions_of(part):
            for system in systems:
                drafts.pop(query.question, None)
                row = score_answer(query, answer_fns[system](query.question))
                rows[system].append(row)
                progress = {"set": built.name, "half": half, "system": system}
                progress |= {"id": row.id, "correct": row.correct, "declined": row.declined}
                progress |= {"declined_because": row.declined_because}
                if query.question in drafts:
                    draft = drafts.pop(query.question)
                    right = bool(query.answerable) and answer_is_correct(
                        draft, query.required_groups
                    )
                    draft_rows.append(
                        {"half": half, "id": row.id, "draft": draft, "draft_correct": right}
                    )
                    progress |= {"draft": draft[:100], "draft_correct": right}
                progress |= {"ttft_s": round(row.ttft_s, 2), "answer": row.answer[:100]}
                print(json.dumps(progress, ensure_ascii=False), file=sys.stderr, flush=True)
    result: dict[str, Any] = {"language": built.language, "kb_passages": sizes}
    result["declined_drafts"] = draft_rows
    for system in systems:
        report = AnswerReport.from_rows(rows[system])
        summary = report.to_json()
        if system == "naive":
            summary["citation_hit_rate"] = None  # the naive prompt asks for no citations
        result[system] = summary
    return result


def table(results: dict[str, Any]) -> str:
    """Markdown: one row per set and system."""

    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{100 * value:.1f}"

    lines = [
        "| set | system | answerable acc % | false refusals % | unanswerable declined % "
        "| median TTFT s (ans / unans) | n (ans / unans) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, result in results["sets"].items():
        for system in results["systems"]:
            r = result[system]
            lines.append(
                f"| {name} | {system} | {pct(r['accuracy'])} | {pct(r['false_refusals'])} | "
                f"{pct(r['declined_unanswerable'])} | {r['median_ttft_s']} "
                f"({r['median_ttft_answerable_s']} / {r['median_ttft_unanswerable_s']}) | "
                f"{r['answerable']} / {r['unanswerable']} |"
            )
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", default="dev", choices=["dev", "test"])
    parser.add_argument("--limit", type=int, default=30, help="questions per half and set")
    parser.add_argument("--sets", default=",".join(SETS), help="comma-separated")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated")
    parser.add_argument("--distractors", type=int, default=300, help="random passages per KB")
    parser.add_argument("--max-tokens", type=int, default=None, help="default: chat.max_tokens")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=None, help="default: results/answer-SPLIT")
    parser.add_argument(
        "--naive-from",
        type=Path,
        default=None,
        help="take the naive pipeline's results from this earlier run of the same questions "
        "(same split, limit, seed, distractors) instead of running it again",
    )
    args = parser.parse_args()
    args.sets = args.sets.split(",")
    args.systems = args.systems.split(",")
    for system in args.systems:
        if system not in SYSTEMS:
            parser.error(f"unknown system {system!r}; known: {', '.join(SYSTEMS)}")
    for name in args.sets:
        if name not in SETS:
            parser.error(f"unknown set {name!r}; known: {', '.join(SETS)}")
    if args.limit <= 0:
        parser.error(f"--limit must be > 0, got {args.limit}")
    args.out = args.out or Path(__file__).parent / "results" / f"answer-{args.split}.json"
    if args.naive_from and "naive" in args.systems:
        parser.error("--naive-from replaces running the naive system: leave it out of --systems")
    return args


def earlier_naive(args: argparse.Namespace, name: str) -> dict[str, Any]:
    """The naive pipeline's summary and rows for set ``name`` from ``args.naive_from``, marked
    with that run's time and code (the naive pipeline does not depend on kbchat's answer path)."""
    earlier = json.loads(args.naive_from.read_text(encoding="utf-8"))
    for key in ("split", "limit_per_half", "seed", "distractors"):
        if earlier.get(key) != getattr(args, key if key != "limit_per_half" else "limit"):
            raise SystemExit(f"{args.naive_from}: {key} is {earlier.get(key)!r}, not this run's")
    naive: dict[str, Any] = earlier["sets"][name]["naive"]
    return naive | {"from_run": {"time": earlier["time"], "code": earlier["code"]}}


def main() -> None:
    configure_process()  # what the CLI and server set: OpenMP policy, FAISS threads
    args = parse_args()
    settings = load_settings(home=CACHE / "home")
    services = Services(settings=settings, library=BenchLibrary(settings))
    options = chat_options(settings, answer_search_options(settings), max_tokens=args.max_tokens)
    built_sets = load_sets(
        args.sets,
        split=args.split,
        limit=args.limit,
        seed=args.seed,
        distractors=args.distractors,
    )
    started = time.perf_counter()
    results: dict[str, Any] = {
        "benchmark": "answer",
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "split": args.split,
        "limit_per_half": args.limit,
        "distractors": args.distractors,
        "seed": args.seed,
        "model": settings.default_model,
        "max_tokens": options.max_tokens,
        "temperature": options.temperature,
        "systems": {
            s: {
                "kbchat": {
                    "embedder": settings.embedder.backend,
                    "chunking": [settings.ingest.chunk_size, settings.ingest.chunk_overlap],
                    "top_k": options.search.top_k,
                    "no_hit": options.no_hit,
                },
                "naive": {
                    "embedder": NAIVE_EMBEDDER,
                    "chunking": list(NAIVE_CHUNKING),
                    "top_k": NAIVE_TOP_K,
                    "prompt": NAIVE_PROMPT,
                },
            }[s]
            for s in args.systems
        },
        "metrics": "fractions in [0, 1]: accuracy and false_refusals over answerable questions, "
        "declined_unanswerable over unanswerable ones; TTFT in seconds",
        "code": code_version(),
        "sets": {},
    }
    if args.naive_from:
        earlier = json.loads(args.naive_from.read_text(encoding="utf-8"))
        results["systems"]["naive"] = earlier["systems"]["naive"] | {"from": args.naive_from.name}
    try:
        complete(services.models.get(None), [Message("user", "hi")], max_tokens=1)  # load it
        for built in built_sets:
            results["sets"][built.name] = run_set(services, built, args.systems, options)
            if args.naive_from:
                results["sets"][built.name]["naive"] = earlier_naive(args, built.name)
    finally:
        services.close()
    results["seconds"] = round(time.perf_counter() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(table(results))


if __name__ == "__main__":
    main()
