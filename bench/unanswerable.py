"""Question sets with an answerable and an unanswerable half, and the knowledge base each half is
asked of, built from the shared evaluation sets (``../shared/eval/dev``).

Usage::

    python bench/unanswerable.py --split dev --limit 30 --out /tmp/sets   # then, per set and half:
    kbchat kb create s && kbchat kb add s /tmp/sets/hotpotqa_en/unanswerable/passages
    kbchat eval answers s /tmp/sets/hotpotqa_en/unanswerable/questions.jsonl

Each half is a folder with ``questions.jsonl`` (the format of ``kbchat eval answers``;
unanswerable questions carry ``"answerable": false``, keep their answers for reference and name
the gold passages left out of their KB in ``withheld_doc_ids``) and
``passages/<id>.txt`` (title on the first line when there is one). The unanswerable half's
knowledge base holds passages on each question's topic but none that answers it:

- ``hotpotqa_en``: every title has one paragraph, so a question's topic is the passages next to
  its gold ones in the corpus (``NEIGHBOURS`` either side; the corpus keeps each question's
  gold and distractor paragraphs together, the distractors chosen by HotpotQA for their overlap
  with the question). Splits as in ``queries.jsonl`` (dev = ``distractor_dev``, test =
  ``fullwiki_gold_in_pool``). Yes/no questions are left out of the unanswerable half (their
  answer is not a string a passage can hold).
- ``cmrc2018_zh``: every title has one paragraph too, so a question's topic is the rest of its
  gold paragraph: the same title with every sentence that holds an answer string removed
  (``<gold id>-rest.txt``); at most one unanswerable question per paragraph.
- ``rgb_zh`` (dev only): the answerable half is asked of the chosen questions' gold passages and
  hard negatives; the unanswerable half of their hard negatives alone.

In both halves of cmrc2018 and hotpotqa, seeded random other passages of the corpus join the KB
as distractors (``--distractors``); the answerable half also holds the topic passages, so the two
halves differ only in whether the answer is there. A passage is dropped from an unanswerable KB
when it holds an answer string of its own question, or, coming from elsewhere, answers any of
the half's questions (see ``Withheld.answered_by``: any answer string beside the gold passage's
title, or a whole answer in distinctive strings; "英文" or "2008年" in a passage on another topic
answers nothing). Questions are the first ``--limit`` that
qualify in a seeded shuffle of the split, so a smaller limit takes a subset of a larger one's.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from retrieval import EVAL_DIR, NEIGHBOURS, read_jsonl

from kbchat.eval.answers import answer_is_correct

SETS = {"cmrc2018_zh": "zh", "hotpotqa_en": "en", "rgb_zh": "zh"}
"""The sets with both halves, and the language of their questions."""
MIN_REST = 40
"""Fewest characters of a cmrc2018 paragraph left without its answer sentences to keep it."""
_SENTENCE = re.compile(r"[^。！？!?；;\n]+[。！？!?；;]*[”」』）)]*|\n+")
_YES_NO = {"yes", "no"}


@dataclass(frozen=True, slots=True)
class Passage:
    """One passage of a knowledge base: written to ``<id>.txt``."""

    id: str
    title: str
    text: str

    def file_text(self) -> str:
        return f"{self.title}\n{self.text}\n" if self.title else f"{self.text}\n"


@dataclass(slots=True)
class Half:
    """Questions (rows in the ``kbchat eval answers`` format) and the passages of their KB."""

    questions: list[dict[str, Any]] = field(default_factory=list)
    passages: dict[str, Passage] = field(default_factory=dict)
    withheld: list[Withheld] = field(default_factory=list)  # unanswerable half: what to keep out

    def write(self, folder: Path) -> None:
        """``folder/questions.jsonl`` and ``folder/passages/<id>.txt``."""
        (folder / "passages").mkdir(parents=True, exist_ok=True)
        with (folder / "questions.jsonl").open("w", encoding="utf-8") as out:
            for row in self.questions:
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
        for passage in self.passages.values():
            path = folder / "passages" / f"{passage.id}.txt"
            path.write_text(passage.file_text(), encoding="utf-8")


@dataclass(slots=True)
class QuestionSet:
    """One data set's two halves for one split."""

    name: str
    language: str
    split: str
    answerable: Half
    unanswerable: Half

    def write(self, folder: Path) -> None:
        self.answerable.write(folder / self.name / "answerable")
        self.unanswerable.write(folder / self.name / "unanswerable")


def holds_answer(text: str, answers: Iterable[str]) -> bool:
    """Whether ``text`` contains any of ``answers`` (case-insensitive substring)."""
    lowered = text.lower()
    return any(answer.lower() in lowered for answer in answers if answer.strip())


def distinctive(answer: str) -> bool:
    """Enough letters that finding it in a passage on another topic likely means an answer
    there: 3+ letters with CJK, 4+ without; digits and punctuation do not count ("英文", "2008年"
    and "cat" occur everywhere)."""
    letters = [ch for ch in answer if ch.isalpha()]
    return len(letters) >= (3 if any("\u3400" <= ch <= "\u9fff" for ch in letters) else 4)


@dataclass(frozen=True, slots=True)
class Withheld:
    """What an unanswerable question's KB must not hold: its gold passages and its answer."""

    gold: frozenset[str]
    answers: tuple[str, ...]
    groups: tuple[tuple[str, ...], ...]
    titles: tuple[str, ...]  # of the gold passages, without "(...)" qualifiers

    @classmethod
    def of(cls, query: dict[str, Any], passages: dict[str, Passage]) -> Withheld:
        groups = query.get("answers_required") or [query.get("answers", [])]
        titles = {
            re.sub(r"\s*[(（].*?[)）]", "", passages[g].title).strip()
            for g in query["gold_doc_ids"]
            if g in passages
        }
        return cls(
            gold=frozenset(query["gold_doc_ids"]),
            answers=tuple(a for group in groups for a in group) + tuple(query.get("answers", [])),
            groups=tuple(tuple(group) for group in groups),
            titles=tuple(t for t in titles if len(t) >= 2),
        )

    def answered_by(self, text: str) -> bool:
        """Whether a passage from outside the question's topic answers it: a distinctive member
        of every required group, or any answer string next to a gold passage's title."""
        lowered = text.lower()
        on_topic = any(title.lower() in lowered for title in self.titles)
        if on_topic and holds_answer(text, self.answers):
            return True
        kept = [[a for a in group if distinctive(a)] for group in self.groups]
        return bool(kept) and all(kept) and answer_is_correct(text, kept)


def rest_of(passage: Passage, answers: Sequence[str]) -> Passage | None:
    """The passage without the sentences that hold an answer string; None if too little is left."""
    kept = [s for s in _SENTENCE.findall(passage.text) if not holds_answer(s, answers)]
    text = re.sub(r"\n{2,}", "\n", "".join(kept)).strip()
    if len(text) < MIN_REST or holds_answer(text, answers):
        return None
    return Passage(f"{passage.id}-rest", passage.title, text)


def _row(query: dict[str, Any], *, answerable: bool) -> dict[str, Any]:
    keep = ("id", "question", "answers", "answers_required", "split")
    row = {k: query[k] for k in keep if k in query}
    row["gold_doc_ids"] = list(query["gold_doc_ids"]) if answerable else []
    if not answerable:
        row["answerable"] = False
        row["withheld_doc_ids"] = list(query["gold_doc_ids"])  # left out of the KB
    return row


def shuffled(queries: Sequence[dict[str, Any]], name: str, split: str, seed: int) -> list[dict]:
    """The split's questions in a seeded order (the same for every limit)."""
    chosen = [q for q in queries if q.get("split") == split]
    random.Random(f"{seed}-{name}-{split}").shuffle(chosen)
    return chosen


def topic_ids(name: str, query: dict[str, Any], order: Sequence[str]) -> list[str]:
    """Passages on a question's topic that are not its gold ones (see the module docstring)."""
    if name == "rgb_zh":
        return list(query.get("hard_negative_ids", []))
    reach = NEIGHBOURS.get(name, 0)
    position = {pid: i for i, pid in enumerate(order)}
    gold = set(query["gold_doc_ids"])
    near = {
        order[i]
        for g in gold
        if g in position
        for i in range(max(0, position[g] - reach), min(len(order), position[g] + reach + 1))
    }
    return [pid for pid in order if pid in near - gold]


def build_set(
    name: str,
    corpus: Sequence[dict[str, Any]],
    queries: Sequence[dict[str, Any]],
    *,
    split: str,
    limit: int,
    seed: int,
    distractors: int,
) -> QuestionSet:
    """Both halves of one set (see the module docstring for how each is made)."""
    if limit <= 0:
        raise ValueError(f"limit must be > 0, got {limit}")
    passages = {
        str(r["id"]): Passage(str(r["id"]), r.get("title") or "", r["text"]) for r in corpus
    }
    order = list(passages)
    candidates = shuffled(queries, name, split, seed)
    answerable = _answerable_half(name, passages, order, candidates[:limit])
    unanswerable = _unanswerable_half(name, passages, order, candidates, limit)
    rng = random.Random(f"{seed}-{name}-{split}-distractors")
    if name != "rgb_zh":
        pool = rng.sample(order, len(order))
        _add_distractors(answerable, pool, passages, distractors)
        _add_distractors(unanswerable, pool, passages, distractors)
    return QuestionSet(name, SETS.get(name, "en"), split, answerable, unanswerable)


def _answerable_half(
    name: str, passages: dict[str, Passage], order: Sequence[str], chosen: Sequence[dict]
) -> Half:
    half = Half([_row(q, answerable=True) for q in chosen])
    for query in chosen:
        for pid in [*query["gold_doc_ids"], *topic_ids(name, query, order)]:
            if pid in passages:
                half.passages[pid] = passages[pid]
    return half


def _unanswerable_half(
    name: str,
    passages: dict[str, Passage],
    order: Sequence[str],
    candidates: Sequence[dict],
    limit: int,
) -> Half:
    half = Half()
    for query in candidates:
        if len(half.questions) >= limit:
            break
        guard = Withheld.of(query, passages)
        taken = any(guard.gold & w.gold for w in half.withheld)
        if not guard.answers or {a.lower() for a in guard.answers} <= _YES_NO or taken:
            continue
        if name == "cmrc2018_zh":
            rests = [
                rest_of(passages[g], guard.answers) for g in sorted(guard.gold) if g in passages
            ]
            topic = {p.id: p for p in rests if p is not None}
        else:
            topic = {
                pid: passages[pid]
                for pid in topic_ids(name, query, order)
                if pid in passages and not holds_answer(passages[pid].text, guard.answers)
            }
        if not topic:
            continue
        half.withheld.append(guard)
        half.questions.append(_row(query, answerable=False))
        half.passages.update(topic)
    # One question's topic passage may be another's gold passage, or answer it: drop both kinds.
    for pid in list(half.passages):
        if not _allowed(pid, half.passages[pid].text, half.withheld):
            del half.passages[pid]
    return half


def _allowed(pid: str, text: str, withheld: Sequence[Withheld]) -> bool:
    return not any(pid in w.gold or w.answered_by(text) for w in withheld)


def _add_distractors(
    half: Half, pool: Sequence[str], passages: dict[str, Passage], count: int
) -> None:
    """Add up to ``count`` passages from ``pool`` that are not in the half yet and that neither
    are nor answer what its unanswerable questions withhold."""
    added = 0
    for pid in pool:
        if added >= count:
            break
        if pid in half.passages or not _allowed(pid, passages[pid].text, half.withheld):
            continue
        half.passages[pid] = passages[pid]
        added += 1


def load_sets(
    names: Sequence[str], *, split: str, limit: int, seed: int, distractors: int
) -> list[QuestionSet]:
    """Build the named sets from ``EVAL_DIR``; sets without the split (rgb_zh: test) are skipped."""
    built = []
    for name in names:
        if name not in SETS:
            raise ValueError(f"unknown set {name!r}; known: {', '.join(SETS)}")
        queries = read_jsonl(EVAL_DIR / name / "queries.jsonl")
        if not any(q.get("split") == split for q in queries):
            print(f"{name}: no {split} questions, skipped", file=sys.stderr)
            continue
        corpus = read_jsonl(EVAL_DIR / name / "corpus.jsonl")
        built.append(
            build_set(
                name,
                corpus,
                queries,
                split=split,
                limit=limit,
                seed=seed,
                distractors=distractors,
            )
        )
    return built


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--split", default="dev", choices=["dev", "test"])
    parser.add_argument("--limit", type=int, default=30, help="questions per half")
    parser.add_argument("--distractors", type=int, default=300, help="random passages per KB")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    for built in load_sets(
        args.sets, split=args.split, limit=args.limit, seed=args.seed, distractors=args.distractors
    ):
        built.write(args.out)
        for half in ("answerable", "unanswerable"):
            part: Half = getattr(built, half)
            print(
                f"{built.name} {half}: {len(part.questions)} questions, "
                f"{len(part.passages)} passages -> {args.out / built.name / half}"
            )


if __name__ == "__main__":
    main()
