"""Quantities an answer states, checked by their units: a number the passages hold is not
supported when the passages give it another kind of unit, or the question asks for another kind.

The 0.5B model copies a number it finds and puts the question's unit on it: over "The
Zephyr-9 kettle has a warranty of three years. Its rated power is 1800 watts." it answered
"Zephyr-9 水壶重约1800公斤" (the files never give a weight) and "How heavy is the Zephyr-9
kettle?" with "It is rated at 1800 watts". The number is in the sources, so the claims
check (``grounding.check_claims``) finds it; its unit says what it measures.

Only units of a few kinds with no reading as a date are known (weight, power, volume,
length, money, area, a count of people or things, a share), in English and Chinese, after a
magnitude ("4.22亿人次", "3 million people"); a number with no known unit is never judged.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

_UNITS: dict[str, tuple[str, ...]] = {
    "weight": (
        "kilograms", "kilogram", "kg", "grams", "gram", "g", "pounds", "pound", "lbs", "lb",
        "ounces", "ounce", "oz", "tonnes", "tonne", "tons", "ton", "公斤", "千克", "克", "斤", "吨",
    ),
    "power": ("kilowatts", "kilowatt", "kw", "watts", "watt", "w", "千瓦", "瓦特", "瓦"),
    "volume": (
        "millilitres", "milliliters", "millilitre", "milliliter", "ml", "litres", "liters",
        "litre", "liter", "l", "gallons", "gallon", "毫升", "升",
    ),
    "length": (
        "kilometres", "kilometers", "kilometre", "kilometer", "km", "centimetres",
        "centimeters", "centimetre", "centimeter", "cm", "millimetres", "millimeters",
        "millimetre", "millimeter", "mm", "metres", "meters", "metre", "meter", "m", "miles",
        "mile", "feet", "foot", "ft", "inches", "inch", "公里", "千米", "厘米", "毫米", "米",
        "英里", "英尺", "英寸",
    ),
    "money": (
        "yuan", "rmb", "dollars", "dollar", "usd", "euros", "euro", "美元", "欧元", "港元",
        "人民币", "元",
    ),
    "area": (
        "square kilometres", "square kilometers", "square metres", "square meters",
        "square miles", "hectares", "hectare", "acres", "acre", "km²", "m²", "平方公里",
        "平方千米", "平方米", "公顷", "亩",
    ),
    "count": (
        "people", "persons", "visitors", "passengers", "vehicles", "人次", "人", "辆", "台",
        "架", "艘", "家", "名",
    ),
    "share": ("%", "percent", "per cent", "个百分点", "百分点"),
}  # fmt: skip
_KIND_OF = {unit: kind for kind, units in _UNITS.items() for unit in units}
_QUANTITY = re.compile(
    r"(\d+(?:[.,]\d+)*)\s*(?:万亿|万|亿|千|百|thousand|million|billion|trillion)?\s*("
    + "|".join(sorted(map(re.escape, _KIND_OF), key=len, reverse=True))
    + r")(?![a-z])"
)
_ASKS: tuple[tuple[frozenset[str], re.Pattern[str]], ...] = tuple(
    (frozenset(kinds.split()), re.compile(words))
    for kinds, words in (
        ("weight", r"how heavy|\bweigh|重多少|多重|重量|多少(?:公斤|千克|克|斤|吨)"),
        ("power", r"\bpower\b|wattage|功率|多少(?:瓦|千瓦)"),
        ("volume", r"capacity|\bvolume\b|容量|容积|多少(?:升|毫升)"),
        (
            "money",
            r"\bprice\b|\bcost\b|how much does .* cost|\brevenue|\bincome\b|\bprofit|\bgdp\b"
            r"|价格|售价|多少钱|收益|收入|营收|营业额|利润|净利|票房|市值|工资|薪",
        ),
        ("area", r"\barea\b|面积"),
        ("share", r"percentage|what share|proportion|(?<![功汇频效])率|比例|占比|百分比|份额"),
        ("count", r"how many (?:people|visitors|passengers|cars|vehicles)|人数|多少人|交付量|销量"),
        ("weight count", r"产量"),
    )
)
"""The kinds of quantity a question asks for, by its words ("How heavy", "容量多少升", "营收":
money, "城镇化率": a share, "产量": a weight or a count)."""


def quantities(text: str) -> list[tuple[str, str, str]]:
    """``(number, unit, kind)`` for each number in ``text`` followed by a known unit, in
    order; text NFKC-normalised and lower-cased, the number without thousands commas."""
    found = _QUANTITY.finditer(unicodedata.normalize("NFKC", text).lower())
    return [(m.group(1).replace(",", ""), m.group(2), _KIND_OF[m.group(2)]) for m in found]


def unit_conflict(answer: str, question: str, passages: Sequence[str]) -> str | None:
    """Why a quantity of ``answer`` is not what the sources or the question say, or None.

    A quantity conflicts when the question asks for another kind (``_ASKS``: "How heavy"
    answered in watts), or when the passages hold its number only with units of another
    kind ("1800公斤" over "1800 watts"). Returns a message naming the quantity.
    """
    stated = quantities(answer)
    if not stated:
        return None
    asked = {kind for kinds, words in _ASKS if words.search(question.lower()) for kind in kinds}
    if asked and not any(kind in asked for _, _, kind in stated):
        number, unit, kind = stated[0]
        wanted = " or ".join(sorted(asked))
        return f"the answer gives {number} {unit} ({kind}), where the question asks for {wanted}"
    held = [q for passage in passages for q in quantities(passage)]
    for number, unit, kind in stated:
        kinds = {k for n, _, k in held if n == number}
        if kinds and kind not in kinds:
            units = ", ".join(sorted({u for n, u, _ in held if n == number}))
            return f"the answer gives {number} {unit}, but the sources give {number} in {units}"
    return None
