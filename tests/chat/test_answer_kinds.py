"""A Chinese answer must be of the kind its question asks for."""

from __future__ import annotations

import pytest

from kbchat.chat.answer_kinds import kind_conflict


@pytest.mark.parametrize(
    ("answer", "question", "reason"),
    [
        (
            "2022年金鸡百花电影节将在11月10日至12日举办。 [1][3]",
            "2022年金鸡百花电影节在哪里举行",
            "the answer gives only a time (11月10日、12日), where the question does not ask when",
        ),
        (
            "2022年5月8日 [2]",
            "香港第六任行政长官选举结果？",
            "the answer gives only a time (2022年5月8日), where the question does not ask when",
        ),
        (  # the question with a year put before it
            "2022年北京冬奥会男子500米速度滑冰金牌",
            "北京冬奥会男子500米速度滑冰金牌",
            "the answer gives only a time (2022年), where the question does not ask when",
        ),
        (
            "George Petros was a contributing editor of the magazine EXIT. [1]",
            "When was the magazine of which George Petros was a contributing editor founded?",
            "the answer gives no number or date, where the question asks for one",
        ),
        (
            "The team that lost to the team coached by Steve Prohm was coached by Steve Prohm.",
            "The team that lost to the team coached by Steve Prohm was coached by whom?",
            "the answer names no one the question does not name itself",
        ),
        (
            "该合唱团于2019年创办。",
            "果果合唱团是谁创办的？",
            "the answer gives only a time (2019年), where the question does not ask when",
        ),
    ],
)
def test_an_answer_of_another_kind_is_declined(answer: str, question: str, reason: str) -> None:
    assert kind_conflict(answer, question) == reason


@pytest.mark.parametrize(
    ("answer", "question"),
    [
        ("厦门", "2022年金鸡百花电影节在哪里举行"),
        ("在厦门举办。", "2022年金鸡百花电影节在哪里举行"),
        ("莱索托足球代表队是莱索托的国家足球代表队。", "莱索托足球队代表哪个国家？"),
        ("1368年", "明朝是哪一年建立的？"),
        ("2021年", "这座桥始建于？"),
        ("3个", "学校有几个分校？"),  # a count, not a date
        ("是的。", "它支持中文吗？"),
        ("高亭宇 [1]", "北京冬奥会男子500米速度滑冰金牌"),
        ("邓小岚", "果果合唱团是谁创办的？"),
        ("只有你自己。", "谁能看到我的文档？"),  # naming no one can answer "who"
        ("保存在本地。", "文件保存在哪里？"),
        ("两年", "保修期多长？"),
        ("It opened in 2021.", "What is the stadium called?"),
        ("It was founded in 1994.", "When was the magazine founded?"),
        ("Three.", "How many kettles are there?"),
        ("When the light turns red.", "When should I descale the kettle?"),  # not a past event
        ("The customer service team.", "Who should I contact about returns?"),  # names nothing
        ("Sara Kestelman", "Who played the mother in Footfalls?"),
        (
            "Alexandra Shiva won first.",
            "Who won an award first, the Brothers Quay or Alexandra Shiva?",
        ),
    ],
)
def test_an_answer_of_the_asked_kind_passes(answer: str, question: str) -> None:
    assert kind_conflict(answer, question) is None
