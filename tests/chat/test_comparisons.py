"""An answer to "which came first, A or B?" is checked against the years the passages give."""

from __future__ import annotations

from pathlib import Path

import pytest

from kbchat.chat.answerable import evidence, key_terms, options
from kbchat.chat.comparisons import comparison_conflict
from kbchat.chat.rag import ChatOptions, stream_answer
from kbchat.config import load_settings
from kbchat.kb.library import Library
from kbchat.retrieve.search import SearchOptions
from kbchat.testing.fakes import ScriptedChatModel
from kbchat.types import Answer

WREN = (
    "Tobias Wren\nTobias Wren (August 14, 1872 – January 3, 1949) was a Scottish painter. "
    "He ran an art school in 1901."
)
SOLBERG = (
    "Maren Solberg\nMaren Solberg (November 30, 1868 – June 21, 1937) was a Norwegian "
    "mountaineer. In 1901 she won a gold medal."
)
BIOS = [WREN, SOLBERG]
EARLIER = "Who was born earlier, Tobias Wren or Maren Solberg?"


@pytest.mark.parametrize(
    ("answer", "question"),
    [
        ("Tobias Wren was born earlier than Maren Solberg. [1][2]", EARLIER),
        ("Tobias Wren.", EARLIER),
        ("Tobias Wren", "Which of Tobias Wren and Maren Solberg was older?"),
        ("Maren Solberg was born later.", "Who was born later, Tobias Wren or Maren Solberg?"),
        ("Maren Solberg", "Which of Tobias Wren and Maren Solberg was younger?"),
    ],
)
def test_an_answer_picking_the_option_the_passages_date_the_other_way_is_caught(
    answer: str, question: str
) -> None:
    found = comparison_conflict(answer, question, BIOS)
    assert found is not None and "1872 for tobias wren" in found and "1868" in found


@pytest.mark.parametrize(
    "answer",
    [
        "Maren Solberg was born first. [2]",
        "Maren Solberg",
        # the opposite comparison word names the same pick another way: not judged
        "Tobias Wren was born later than Maren Solberg.",
        # both named, no comparison: nothing is picked
        "Tobias Wren (1872) and Maren Solberg (1868).",
        # neither named
        "The sources give both birth dates.",
    ],
)
def test_a_right_pick_or_no_pick_passes(answer: str) -> None:
    assert comparison_conflict(answer, EARLIER, BIOS) is None


def test_nothing_is_judged_without_a_year_for_each_option() -> None:
    undated = "Maren Solberg\nMaren Solberg was a Norwegian mountaineer."
    assert comparison_conflict("Tobias Wren.", EARLIER, [WREN, undated]) is None
    # not a choice, or a choice that compares no dates
    assert comparison_conflict("Tobias Wren.", "Who was born in 1872?", BIOS) is None
    nicer = "Who painted better, Tobias Wren or Maren Solberg?"
    assert comparison_conflict("Tobias Wren.", nicer, BIOS) is None


def test_what_is_compared_is_read_where_the_question_says() -> None:
    question = "Which band was formed first, Lark Hollow or Tinfoil Sky?"
    lark = "Lark Hollow\nLark Hollow is a folk band from Leeds. It was formed in 2004."
    tinfoil = "Tinfoil Sky\nTinfoil Sky is a rock band formed in 1999 in Cork. It split in 2003."
    found = comparison_conflict("Lark Hollow was formed first.", question, [lark, tinfoil])
    assert found == (
        "the answer picks lark hollow, but the passages give 2004 for lark hollow and "
        "1999 for tinfoil sky"
    )


def test_chinese_comparisons_are_checked_too() -> None:
    lu1 = "鲁一\n鲁一（1881年9月25日－1936年10月19日），作家。"
    lu2 = "鲁二\n鲁二（1890年－1950年），画家。"
    question = "谁出生更早，鲁一还是鲁二？"
    assert comparison_conflict("鲁二更早出生。", question, [lu1, lu2]) is not None
    assert comparison_conflict("鲁一更早出生。", question, [lu1, lu2]) is None
    assert comparison_conflict("鲁二", "谁更年长，鲁一还是鲁二？", [lu1, lu2]) is not None


def test_which_of_two_is_a_choice_and_older_compares_births() -> None:
    question = "Which of Tobias Wren and Maren Solberg was older?"
    assert options(question) == ["Tobias Wren", "Maren Solberg"]
    assert key_terms(question)[-1] == "born"
    assert evidence(question, BIOS).share == 1.0


def test_the_model_s_wrong_pick_is_declined_with_both_years(tmp_path: Path) -> None:
    root = tmp_path / "people"
    root.mkdir()
    (root / "wren.txt").write_text(WREN + "\n", encoding="utf-8")
    (root / "solberg.txt").write_text(SOLBERG + "\n", encoding="utf-8")
    library = Library(load_settings(embedder={"backend": "hash"}))
    library.create("people")
    kb = library.get("people")
    kb.add([root])
    model = ScriptedChatModel(["Tobias Wren was born earlier than Maren Solberg. [1][2]"])
    options = ChatOptions(search=SearchOptions(threshold=0.0))
    *_, answer = stream_answer(model, [kb], EARLIER, options=options)
    assert isinstance(answer, Answer) and answer.refused
    assert any("1872 for tobias wren and 1868 for maren solberg" in n for n in answer.notices)
    assert len(model.received) == 2  # asked once more with the years, picked wrong again
    assert "1868 for Maren Solberg" in model.received[1][-1].content
    model = ScriptedChatModel(["Maren Solberg was born earlier than Tobias Wren. [1][2]"])
    *_, answer = stream_answer(model, [kb], EARLIER, options=options)
    assert isinstance(answer, Answer) and answer.outcome == "answered"
    # Given the years, the model's second pick is the right one, and it is shown.
    wrong, right = "Tobias Wren was born earlier. [1]", "Maren Solberg was born earlier. [2]"
    model = ScriptedChatModel([wrong, right])
    events = list(stream_answer(model, [kb], EARLIER, options=options))
    answer = events[-1]
    assert isinstance(answer, Answer) and answer.outcome == "answered"
    assert answer.text.startswith("Maren Solberg") and "Tobias Wren was" not in "".join(
        e for e in events if isinstance(e, str)
    )
