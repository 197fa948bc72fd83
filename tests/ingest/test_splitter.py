"""Tests of the Chinese-aware splitter."""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kbchat.ingest import splitter
from kbchat.ingest.splitter import split_documents, split_spans
from kbchat.types import Document

ZH = (
    "本产品的保修期为两年，自购买之日起计算。保修期内，非人为损坏可以免费维修；人为损坏需要收费。"
    "如需维修，请携带发票前往任意一家授权服务中心！服务中心的地址可以在官网上查询。"
    "退货需要在七天之内办理，超过七天只能换货？换货时请保持包装完好。"
)
EN = (
    "The warranty lasts two years from the date of purchase. During the warranty, repairs are "
    "free, e.g. a broken screen or a faulty battery. The fee is 3.14 dollars per page, see Dr. "
    "Smith for details. Returns are accepted within 7 days! After that, only exchanges are "
    "possible. Prices rose 1,250.75 percent in 2019. Contact J. K. Rowling at 10:30 a.m. daily."
)
NUMBER = re.compile(r"\d+(?:[.,:]\d+)*")


def _doc(text: str, **fields: object) -> Document:
    return Document(text=text, source="manual.md", **fields)  # type: ignore[arg-type]


def _texts(text: str, size: int, overlap: int) -> list[str]:
    return [c.text for c in split_documents([_doc(text)], chunk_size=size, chunk_overlap=overlap)]


@pytest.mark.parametrize(
    ("size", "overlap", "message"),
    [
        (0, 0, "chunk_size must be > 0, got 0"),
        (-5, 0, "got -5"),
        (100, -1, "got -1"),
        (100, 100, "chunk_overlap (100) must be smaller than chunk_size (100)"),
    ],
)
def test_bad_sizes_name_the_value(size: int, overlap: int, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        split_documents([_doc("text")], chunk_size=size, chunk_overlap=overlap)


def test_empty_and_blank_documents_give_no_chunks() -> None:
    assert split_documents([_doc(""), _doc(" \n\n\t ")], chunk_size=50, chunk_overlap=0) == []


def test_short_text_is_one_trimmed_chunk() -> None:
    assert _texts("\n  短文本。 Short text.  \n", 50, 10) == ["短文本。 Short text."]


def test_positions_run_across_documents_and_metadata_is_copied() -> None:
    documents = [
        Document(text=ZH, source="a.pdf", page=1, headings=("保修",), title="手册"),
        Document(text=EN, source="a.pdf", page=2, title="手册"),
    ]
    chunks = split_documents(documents, chunk_size=80, chunk_overlap=0)
    assert [c.position for c in chunks] == list(range(len(chunks)))
    first_page = [c for c in chunks if c.page == 1]
    assert first_page and all(c.headings == ("保修",) and c.title == "手册" for c in first_page)
    assert all(c.source == "a.pdf" for c in chunks)
    assert chunks[-1].page == 2 and chunks[-1].headings == ()


def test_chinese_chunks_end_at_sentence_marks() -> None:
    texts = _texts(ZH, 60, 0)
    assert len(texts) > 2
    assert all(len(t) <= 60 for t in texts)
    assert all(t[-1] in "。！？；" for t in texts)
    assert "".join(texts) == ZH


@pytest.mark.parametrize("size", [14, 16, 20])
def test_a_closing_quote_or_bracket_stays_with_its_sentence(size: int) -> None:
    text = "他说：“好的，我明白了。”然后他就走出去了。（见第三章的详细说明。）最后一句是这样的。"
    texts = _texts(text, size, 0)
    assert texts == [
        "他说：“好的，我明白了。”",
        "然后他就走出去了。",
        "（见第三章的详细说明。）",
        "最后一句是这样的。",
    ]


def test_english_sentences_are_not_cut_at_decimals_or_abbreviations() -> None:
    texts = _texts(EN, 120, 0)
    assert all(len(t) <= 120 for t in texts)
    assert all(t[-1] in ".!" for t in texts)
    for fragment in ("e.g. a broken", "3.14 dollars", "Dr. Smith", "J. K. Rowling", "1,250.75"):
        assert any(fragment in t for t in texts), fragment


@pytest.mark.parametrize("size", [21, 30, 45])
def test_numbers_and_words_are_never_cut(size: int) -> None:
    text = "价格3.1415926元和12,345,678元以及2024-01-01的版本v10.2.3在10:30发布" * 6
    spans = split_spans(text, chunk_size=size, chunk_overlap=0)
    words = [m.span() for m in re.finditer(r"[0-9A-Za-z]+(?:[.,:\-][0-9A-Za-z]+)*", text)]
    for start, end in spans:
        assert end - start <= size
        for word_start, word_end in words:
            assert not word_start < start < word_end
            assert not word_start < end < word_end


def test_mixed_text_respects_size_and_keeps_all_text() -> None:
    text = "\n\n".join([ZH, EN, ZH + EN])
    texts = _texts(text, 100, 0)
    assert all(len(t) <= 100 for t in texts)
    assert re.sub(r"\s", "", "".join(texts)) == re.sub(r"\s", "", text)


def test_overlap_repeats_whole_clauses_of_the_previous_chunk() -> None:
    spans = split_spans(ZH, chunk_size=60, chunk_overlap=25)
    assert any(start < prev_end for (_, prev_end), (start, _) in itertools.pairwise(spans))
    for (prev_start, prev_end), (start, _) in itertools.pairwise(spans):
        assert prev_start < start
        if start < prev_end:
            assert prev_end - start <= 25
            assert ZH[start - 1] in "，。！？；"  # the repeated text starts a clause


def test_overlap_is_dropped_when_it_would_leave_no_room() -> None:
    text = "短句。" + "x" * 29
    spans = split_spans(text, chunk_size=30, chunk_overlap=10)
    assert spans == [(0, 3), (3, 32)]


UNPUNCTUATED_ZH = (
    "本设备为楼宇门禁控制器安装时请先断开电源然后将主板固定在墙面支架上接线完成后再通电调试" * 6
)


def _overlaps(spans: list[tuple[int, int]]) -> list[int]:
    return [prev_end - start for (_, prev_end), (start, _) in itertools.pairwise(spans)]


def test_unpunctuated_chinese_overlaps_at_jieba_word_boundaries() -> None:
    import rjieba

    spans = split_spans(UNPUNCTUATED_ZH, chunk_size=50, chunk_overlap=20)
    assert len(spans) > 3
    assert all(10 <= overlap <= 20 for overlap in _overlaps(spans))
    word_starts, offset = set(), 0
    for word in rjieba.cut(UNPUNCTUATED_ZH):
        word_starts.add(offset)
        offset += len(word)
    assert all(start in word_starts for start, _ in spans[1:])


def test_unpunctuated_english_overlaps_at_whole_words() -> None:
    text = " ".join(f"word{i} alpha beta gamma" for i in range(40))
    spans = split_spans(text, chunk_size=80, chunk_overlap=30)
    assert all(15 <= overlap <= 30 for overlap in _overlaps(spans))
    assert all(text[start - 1] == " " for start, _ in spans[1:])


def test_text_without_words_or_spaces_overlaps_by_characters() -> None:
    text = "กขคงจฉชซฌญ" * 30  # Thai: no spaces, no jieba words
    spans = split_spans(text, chunk_size=40, chunk_overlap=12)
    assert _overlaps(spans) and all(overlap == 12 for overlap in _overlaps(spans))


def test_a_short_clause_at_the_cut_gives_way_to_a_fuller_overlap() -> None:
    text = "甲" * 45 + "，乙乙" + "丙" * 40
    spans = split_spans(text, chunk_size=50, chunk_overlap=20)
    assert _overlaps(spans)[0] >= 10


_FACT_ALPHABET = st.sampled_from([*"保修期两年产品服务中心安装电源主板墙面支架", "，", "。", " "])


@settings(max_examples=200, deadline=None)
@given(
    pieces=st.lists(_FACT_ALPHABET, min_size=1, max_size=300),
    chunk_size=st.integers(min_value=10, max_value=80),
    overlap_ratio=st.floats(min_value=0.1, max_value=0.6),
)
def test_property_a_fact_of_half_the_overlap_is_whole_in_some_chunk(
    pieces: list[str], chunk_size: int, overlap_ratio: float
) -> None:
    text = "".join(pieces)
    overlap = max(2, int(chunk_size * overlap_ratio))
    texts = [text[s:e] for s, e in split_spans(text, chunk_size=chunk_size, chunk_overlap=overlap)]
    length = overlap // 2
    for offset in range(len(text) - length + 1):
        fact = text[offset : offset + length].strip()
        assert not fact or any(fact in chunk for chunk in texts), (fact, texts)


def test_a_token_longer_than_chunk_size_is_cut() -> None:
    token = "A" * 70
    texts = _texts(f"前缀 {token} 后缀", 30, 0)
    assert all(len(t) <= 30 for t in texts)
    assert "".join(texts).replace(" ", "") == f"前缀{token}后缀"


def test_headings_start_chunks_and_stay_with_their_text() -> None:
    text = (
        "# 保修政策\n\n本产品保修两年，自购买之日起计算。保修期内免费维修。\n\n"
        "## 退换货\n\n七天内可以无理由退货。超过七天只能换货，运费自理。\n\n"
        "## Shipping\n\nOrders ship within two days. Express delivery costs extra."
    )
    texts = _texts(text, 60, 20)
    assert texts[0] == "# 保修政策\n\n本产品保修两年，自购买之日起计算。保修期内免费维修。"
    assert texts[1] == "## 退换货\n\n七天内可以无理由退货。超过七天只能换货，运费自理。"
    assert texts[2].startswith("## Shipping\n\nOrders")
    assert not any(t.splitlines()[-1].startswith("#") for t in texts)


def test_small_sections_are_merged_but_a_heading_never_ends_a_chunk() -> None:
    text = "# 一\n\n甲。\n\n# 二\n\n乙。\n\n# 三\n\n" + "丙" * 30
    texts = _texts(text, 30, 0)
    assert texts[0] == "# 一\n\n甲。\n\n# 二\n\n乙。"
    assert texts[1].startswith("# 三\n\n丙")


def test_table_is_cut_between_rows_without_overlap() -> None:
    rows = [f"产品: 型号{i} | 价格: {i * 100}元 | 库存: {i}" for i in range(30)]
    table = "\n".join(rows)
    chunks = split_documents(
        [Document(text=table, source="t.xlsx", sheet="价格表", kind="table")],
        chunk_size=100,
        chunk_overlap=30,
    )
    assert len(chunks) > 3
    assert all(len(c.text) <= 100 and c.sheet == "价格表" for c in chunks)
    lines = [line for c in chunks for line in c.text.split("\n")]
    assert lines == rows  # whole rows, each exactly once


def test_a_table_row_longer_than_chunk_size_is_cut_at_clause_marks() -> None:
    long_row = "说明: 这一行很长，包含很多描述，需要被切开，因为它比块大小还要长，必须处理"
    table = f"名称: 甲 | 数量: 1\n{long_row}\n名称: 乙 | 数量: 2"
    texts = [
        c.text
        for c in split_documents(
            [Document(text=table, source="t.csv", kind="table")], chunk_size=25, chunk_overlap=5
        )
    ]
    assert texts[0] == "名称: 甲 | 数量: 1"
    assert all(len(t) <= 25 for t in texts)
    assert all(t[-1] in "，理1" or t.endswith("数量: 2") for t in texts)
    assert "".join(texts).replace("\n", "") == table.replace("\n", "")


_ALPHABET = st.sampled_from(
    list("保修期两年产品服务中心")
    + list("abcXYZ019")
    + list("。，！？；、：.,;:!?-| ")
    + ["\n", "\n\n", "# "]
)


@settings(max_examples=300, deadline=None)
@given(
    pieces=st.lists(_ALPHABET, max_size=400),
    chunk_size=st.integers(min_value=5, max_value=120),
    overlap_ratio=st.floats(min_value=0, max_value=0.9),
    table=st.booleans(),
)
def test_property_no_text_lost_and_sizes_respected(
    pieces: list[str], chunk_size: int, overlap_ratio: float, table: bool
) -> None:
    text = "".join(pieces)
    overlap = int(chunk_size * overlap_ratio)
    document = Document(text=text, source="p", kind="table" if table else "text")
    chunks = split_documents([document], chunk_size=chunk_size, chunk_overlap=overlap)
    spans = split_spans(
        text, chunk_size=chunk_size, chunk_overlap=0 if table else overlap, table=table
    )
    assert [c.text for c in chunks] == [text[s:e] for s, e in spans]
    kept, previous_end = [], 0
    for chunk, (start, end) in zip(chunks, spans, strict=True):
        assert 0 < len(chunk.text) <= chunk_size
        assert chunk.text == chunk.text.strip()
        repeated = max(0, previous_end - start)
        assert repeated <= (0 if table else overlap)
        assert start >= 0 and end > previous_end  # progress
        kept.append(chunk.text[repeated:])
        previous_end = end
    assert re.sub(r"\s", "", "".join(kept)) == re.sub(r"\s", "", text)
    words = [m.span() for m in re.finditer(r"[abcXYZ019]+(?:[.,:\-][abcXYZ019]+)*", text)]
    for word_start, word_end in words:
        if word_end - word_start <= chunk_size:
            assert not any(word_start < cut < word_end for span in spans for cut in span)


def test_large_text_splits_into_bounded_chunks() -> None:
    # Speed is bench/ingest.py's business (no timed assertions here): ~0.2 s on 2 cores.
    text = ("\n\n".join([ZH, EN]) + "\n\n") * 800  # ~330k characters
    spans = split_spans(text, chunk_size=400, chunk_overlap=60)
    assert len(spans) > 500 and all(end - start <= 400 for start, end in spans)


@settings(max_examples=150, deadline=None)
@given(
    pieces=st.lists(_ALPHABET, max_size=600),
    chunk_size=st.integers(min_value=5, max_value=60),
    overlap_ratio=st.floats(min_value=0, max_value=0.9),
    table=st.booleans(),
)
def test_property_boundaries_found_in_segments_give_the_same_cuts(
    pieces: list[str], chunk_size: int, overlap_ratio: float, table: bool
) -> None:
    text = "".join(pieces)
    overlap = 0 if table else int(chunk_size * overlap_ratio)
    whole = split_spans(text, chunk_size=chunk_size, chunk_overlap=overlap, table=table)
    saved = splitter._SEGMENT_CHUNKS, splitter._MIN_SEGMENT
    splitter._SEGMENT_CHUNKS, splitter._MIN_SEGMENT = 2, 1
    try:
        segmented = split_spans(text, chunk_size=chunk_size, chunk_overlap=overlap, table=table)
    finally:
        splitter._SEGMENT_CHUNKS, splitter._MIN_SEGMENT = saved
    assert segmented == whole


def test_a_huge_single_line_is_split_lazily(monkeypatch: pytest.MonkeyPatch) -> None:
    text = "longline word " * 200_000  # 2.8 MB, one line
    scanned: list[int] = []
    find = splitter._find_boundaries

    def spy(text: str, *args: object) -> object:
        bounds = find(text, *args)  # type: ignore[arg-type]
        scanned.append(bounds.hi - bounds.lo)
        return bounds

    monkeypatch.setattr(splitter, "_find_boundaries", spy)
    first = list(itertools.islice(splitter.iter_spans(text, chunk_size=400, chunk_overlap=60), 3))
    assert len(first) == 3 and all(end - start <= 400 for start, end in first)
    assert scanned and max(scanned) <= 20_000  # one segment, not the whole text


FAQ = (
    "产品常见问题\n\n问：支持哪些语言？\n答：中文和英文。\n\n"
    "问：文件修改以后如何更新知识库？\n答：运行 kbchat kb sync 名称 文件夹，修改过的文件会重新索引。\n\n"
    "问：如何备份？\n答：复制整个数据目录。\n"
)


def test_a_faq_is_cut_before_every_entry_and_its_title_stays_with_the_first() -> None:
    text = (
        FAQ
        + "\n"
        + FAQ.replace("产品常见问题\n\n", "").replace("问：", "Q: ").replace("答：", "A: ")
    )
    chunks = [text[a:b] for a, b in split_spans(text, chunk_size=400, chunk_overlap=60)]
    assert chunks[0] == "产品常见问题\n\n问：支持哪些语言？\n答：中文和英文。"
    assert chunks[1].startswith("问：文件修改以后") and chunks[1].endswith("重新索引。")
    assert chunks[2] == "问：如何备份？\n答：复制整个数据目录。"
    assert [c[:2] for c in chunks[3:]] == ["Q:", "Q:", "Q:"]  # no overlap between entries
    assert len(chunks) == 6


def test_question_lines_without_answers_are_not_entries() -> None:
    text = "问：第一个问题？\n问：第二个问题？\n问：第三个问题？"
    assert split_spans(text, chunk_size=400, chunk_overlap=60) == [(0, len(text))]


def test_a_long_entry_is_split_inside_and_the_next_entry_still_starts_a_chunk() -> None:
    long_answer = "答：" + "这是一句很长的回答。" * 30
    text = f"问：第一个？\n{long_answer}\n\n问：第二个？\n答：短的回答。"
    chunks = [text[a:b] for a, b in split_spans(text, chunk_size=120, chunk_overlap=20)]
    assert all(len(c) <= 120 for c in chunks)
    assert chunks[-1] == "问：第二个？\n答：短的回答。"
