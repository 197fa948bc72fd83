"""An answer read from a sibling's document, not the one the question names, is caught."""

from __future__ import annotations

from pathlib import Path

import pytest

from kbchat.chat.rag import ChatOptions, stream_answer
from kbchat.chat.subjects import OtherSubject, other_subject
from kbchat.config import load_settings
from kbchat.kb.library import Library
from kbchat.retrieve.search import SearchOptions
from kbchat.testing.fakes import ScriptedChatModel
from kbchat.types import Answer

EEL = "黑尾前肛鳗\n黑尾前肛鳗，为通鳃鳗科的其中一个种。本鱼分布于台湾西南海域。体长可达23.7公分。"
SIBLING = (
    "高氏前肛鳗\n高氏前肛鳗，为通鳃鳗科的其中一个种。体长为体高的17.3倍；尾长为头与躯干的2.1倍。"
)
GENUS = "前肛鳗\n前肛鳗（学名：），为通鳃鳗科的一个种。本鱼分布于全球各大洋。"
QUESTION = "黑尾前肛鳗的体长是体高的多少倍？"


def test_an_answer_from_the_sibling_s_article_names_both_subjects() -> None:
    found = other_subject(
        "黑尾前肛鳗的体长是体高的17.3倍。 [2]",
        QUESTION,
        [EEL, SIBLING, GENUS],
        ["eel.txt", "gao.txt", "genus.txt"],
    )
    # the genus "前肛鳗" is in the question too, but inside the longer name it asks about
    assert found == OtherSubject(index=1, asked="黑尾前肛鳗", about="高氏前肛鳗")


@pytest.mark.parametrize(
    ("answer", "passages", "files"),
    [
        # read from the article the question names
        ("体长可达23.7公分。", [EEL, SIBLING], ["eel.txt", "gao.txt"]),
        # a later chunk of the same file has no title line of its own
        ("体长为体高的20.1倍。", [EEL, "体长为体高的20.1倍。"], ["eel.txt", "eel.txt"]),
        # the passage it came from mentions the subject
        (
            "20.1倍",
            [EEL, "比较\n黑尾前肛鳗的体长为体高的20.1倍。"],
            ["eel.txt", "compare.txt"],
        ),
        # no passage's title is named in the question
        ("17.3倍", [SIBLING], ["gao.txt"]),
        # the answer's new words are in no passage: other checks judge it
        ("体长是体高的99倍。", [EEL, SIBLING], ["eel.txt", "gao.txt"]),
    ],
)
def test_answers_about_the_question_s_subject_pass(
    answer: str, passages: list[str], files: list[str]
) -> None:
    assert other_subject(answer, QUESTION, passages, files) is None


def test_the_second_hop_of_a_bridge_question_is_about_the_first_s_subject() -> None:
    film = "Nightfall Express\nNightfall Express is a 1961 film directed by Harriet Vane."
    director = "Harriet Vane\nHarriet Vane was a British director. She died in 1984 in Oxford."
    question = "In what year did the director of Nightfall Express die?"
    answer = "The director died in 1984 [2]."
    assert other_subject(answer, question, [film, director], ["a.txt", "b.txt"]) is None


def test_the_model_s_answer_from_a_sibling_product_s_manual_is_declined(tmp_path: Path) -> None:
    root = tmp_path / "manuals"
    root.mkdir()
    (root / "breeze-max.md").write_text(
        "Breeze Max\nThe Breeze Max purifier cleans rooms up to 40 square metres. "
        "Its noise level was not measured.\n",
        encoding="utf-8",
    )
    (root / "breeze-mini.md").write_text(
        "Breeze Mini\nThe Breeze Mini purifier has a noise level of 45 dB on its lowest fan "
        "setting.\n",
        encoding="utf-8",
    )
    library = Library(load_settings(embedder={"backend": "hash"}))
    library.create("manuals")
    kb = library.get("manuals")
    kb.add([root])
    model = ScriptedChatModel(["The Breeze Max purifier has a noise level of 45 dB [2]."])
    question = "What is the noise level of the Breeze Max purifier?"
    options = ChatOptions(search=SearchOptions(threshold=0.0))
    *_, answer = stream_answer(model, [kb], question, options=options)
    assert isinstance(answer, Answer)
    assert answer.refused
    assert (
        "declined: the answer comes from breeze-mini.md on breeze mini, which does not "
        "mention breeze max, the subject of the question"
    ) in answer.notices


def test_a_model_code_in_a_title_is_the_subject_the_question_names() -> None:
    manuals = ["X100 空气净化器\n适用面积 40 平方米。", "X200 空气净化器\n噪声：45 分贝。"]
    found = other_subject("X100 的噪声为 45 分贝。", "X100 的噪声是多少？", manuals, ["a", "b"])
    assert found == OtherSubject(index=1, asked="x100", about="x200 空气净化器")


MANUALS_EN = [
    "Breeze Max purifier\nThe Breeze Max costs 399 USD. Warranty: three years.",
    "Breeze Mini purifier\nThe Breeze Mini costs 99 USD. Power: USB-C, 5 V. Controlled by an app.",
]


@pytest.mark.parametrize(
    ("answer", "question"),
    [
        # "Breeze Max purifier": a question saying "the Breeze Max" names it all the same
        ("The Breeze Max is powered by USB-C, 5 V. [2]", "How is the Breeze Max powered?"),
        # a yes adds no word: it was read where "app" is, the Mini's manual
        ("The Breeze Max has an app. [1][2]", "Does the Breeze Max have an app?"),
    ],
)
def test_an_answer_from_the_mini_s_manual_is_not_about_the_max(answer: str, question: str) -> None:
    found = other_subject(answer, question, MANUALS_EN, ["max.md", "mini.md"])
    assert found == OtherSubject(index=1, asked="breeze max", about="breeze mini purifier")


def test_the_sibling_s_number_outweighs_a_unit_both_manuals_hold() -> None:
    manuals = [
        "X100 空气净化器\n噪声：28 分贝。CADR：400 立方米/小时。",
        "X200 空气净化器\n甲醛 CADR：120 立方米/小时。",
    ]
    answer = "X100 的甲醛 CADR 为 120 立方米/小时。"
    found = other_subject(answer, "X100 的甲醛 CADR 是多少？", manuals, ["a", "b"])
    assert found is not None and found.index == 1
