"""Quantities an answer states, checked by their units."""

from __future__ import annotations

import pytest

from kbchat.chat.quantities import quantities, unit_conflict

KETTLE = ["The Zephyr-9 kettle has a warranty of three years.\nIts rated power is 1800 watts."]


def test_quantities_are_numbers_with_a_known_unit() -> None:
    text = "It costs 1,200 yuan, weighs 3.5 kg, holds 2 litres; founded 2008年; 3 left"
    assert quantities(text) == [
        ("1200", "yuan", "money"),
        ("3.5", "kg", "weight"),
        ("2", "litres", "volume"),
    ]


def test_a_number_the_sources_give_in_another_unit_is_a_conflict() -> None:
    assert unit_conflict(
        "Zephyr-9 水壶重约1800公斤。 [1]", "Zephyr-9 水壶重多少公斤？", KETTLE
    ) == ("the answer gives 1800 公斤, but the sources give 1800 in watts")
    assert unit_conflict("容量是 1800 升。", "Zephyr-9 水壶的容量是多少升？", KETTLE) is not None


def test_a_quantity_of_another_kind_than_the_question_asks_is_a_conflict() -> None:
    conflict = unit_conflict("It is rated at 1800 watts [1].", "How heavy is the Zephyr-9?", KETTLE)
    assert conflict == "the answer gives 1800 watts (power), where the question asks for weight"


def test_agreeing_units_and_unknown_ones_are_no_conflict() -> None:
    assert unit_conflict("1800 瓦 [1]", "Zephyr-9 的额定功率是多少？", KETTLE) is None
    assert unit_conflict("1800 W", "What power does it draw?", KETTLE) is None
    assert unit_conflict("Three years.", "How long is the warranty?", KETTLE) is None
    assert unit_conflict("1800 units", "How many?", KETTLE) is None  # no known unit
    assert unit_conflict("2.2千瓦", "额定功率？", ["额定功率为2.2"]) is None  # no unit there


@pytest.mark.parametrize(
    ("answer", "question", "reason"),
    [
        (
            "2022年国庆节假期全国旅游收益是4.22亿人次。",
            "2022年国庆节假期全国旅游收益是多少？",
            "the answer gives 4.22 人次 (count), where the question asks for money",
        ),
        (
            "城镇化率达到了400万人以下。",
            "2021年我国常住人口城镇化率达到了多少？",
            "the answer gives 400 人 (count), where the question asks for share",
        ),
        (
            "4500.4万亩",
            "2022年全国棉花产量",
            "the answer gives 4500.4 亩 (area), where the question asks for count or weight",
        ),
    ],
)
def test_amounts_after_a_magnitude_are_judged_by_their_kind(
    answer: str, question: str, reason: str
) -> None:
    assert unit_conflict(answer, question, []) == reason


@pytest.mark.parametrize(
    ("answer", "question"),
    [
        ("2872.1亿元", "2022年国庆节假期全国旅游收益是多少？"),
        ("64.72%", "2021年我国常住人口城镇化率达到了多少？"),
        ("597.7万吨", "2022年全国棉花产量"),
        ("100人民币", "门票的价格是多少？"),  # 人民币 is money, not a count of 人
        ("2.2千瓦", "电机的功率是多少？"),  # 功率 asks for power, not a share
    ],
)
def test_amounts_of_the_asked_kind_pass(answer: str, question: str) -> None:
    assert unit_conflict(answer, question, []) is None
