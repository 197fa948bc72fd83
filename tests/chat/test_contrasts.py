"""An answer the passages give only for a sibling of what the question asks is declined."""

from __future__ import annotations

import pytest

from kbchat.chat.contrasts import contrast_conflict, siblings, years

TESLA = (
    "不过，特斯拉的成绩单未达华尔街预期。以特斯拉2021年的全球交付量93.62万辆计算，"
    "按照马斯克的规划，特斯拉2022年的交付量需要超过140万辆。"
)


def test_a_number_given_for_another_year_is_declined_naming_both_years() -> None:
    reason = contrast_conflict("93.62万辆 [1]", "2022年特斯拉交付量", [TESLA])
    assert reason == "the passages give 93.62 for 2021, not for 2022"


@pytest.mark.parametrize(
    ("answer", "question", "passage"),
    [
        # the clause holding it names the question's year
        ("131万辆", "2022年特斯拉交付量", "2022年特斯拉共交付131万辆，同比增长40%。"),
        # the year is in another clause: nothing is known against it
        ("131万辆", "2022年特斯拉交付量", "2022年，特斯拉共交付131万辆。"),
        # a date answers a question about another year's event
        (
            "2015年7月31日",
            "2022年冬奥会申办成功的时间",
            "2015年7月31日，北京获得2022年冬奥会举办权。",
        ),
        # the question names no year
        ("93.62万辆", "特斯拉的交付量是多少？", TESLA),
        # the number is the question's own
        ("交付量93.62万辆", "交付量93.62万辆是哪一年的？2021年吗", TESLA),
        # one of its clauses is the question's year
        ("500万", "2023年的销量？", "2022年销量500万。2023年销量仍为500万，持平。"),
        # English: the clause names the year; a thousands separator is not a clause end
        (
            "1,313,851",
            "How many cars did Tesla deliver in 2022?",
            "In 2022 it delivered 1,313,851 cars.",
        ),
    ],
)
def test_values_of_the_question_s_year_or_of_no_known_year_pass(
    answer: str, question: str, passage: str
) -> None:
    assert contrast_conflict(answer, question, [passage]) is None


def test_english_clauses_are_read_too() -> None:
    passage = "Revenue was 53.8 billion dollars in 2021, and analysts expected more."
    reason = contrast_conflict("53.8 billion dollars", "What was the revenue in 2022?", [passage])
    assert reason == "the passages give 53.8 for 2021, not for 2022"


def test_years_are_four_digit_years_not_amounts_or_decimals() -> None:
    assert years("2022年 in 1999, 2022-23 season") == {"2022", "1999"}
    assert years("2022万元 12022 20.22 2022%") == set()


def test_a_name_read_from_the_women_s_final_does_not_answer_the_men_s() -> None:
    passage = "在2022年WTT世界杯决赛中，孙颖莎夺得女单冠军，陈梦获得亚军。"
    question = "2022年WTT世界杯决赛男单冠军"
    reason = contrast_conflict("孙颖莎 [1][2]", question, [passage])
    assert reason == "the passages give 孙颖莎 for 女单, not for 男单"
    men = "2022年WTT世界杯决赛，王楚钦获得男单冠军。"
    assert contrast_conflict("王楚钦", question, [passage, men]) is None


def test_another_quarter_or_another_first_day_is_a_sibling() -> None:
    assert siblings("第一季度", "美团第四季度营收") == ["第四季度"]
    assert siblings("首日", "春节档次日票房") == ["次日"]
    assert siblings("北京", "东京奥运会") == []  # compass points name places, not siblings
    passage = "美团第四季度营收601.3亿元。"
    reason = contrast_conflict("601.3亿元", "美团第一季度营收是多少？", [passage])
    assert reason == "the passages give 601.3 for 第四季度, not for 第一季度"


def test_a_name_also_stated_in_a_clause_without_a_sibling_passes() -> None:
    passages = ["孙颖莎夺得女单冠军。", "孙颖莎在决赛中表现出色。"]
    assert contrast_conflict("孙颖莎", "WTT决赛男单冠军是谁？", passages) is None
