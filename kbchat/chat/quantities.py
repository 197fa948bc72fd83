"""Quantities an answer states, checked by their units: a number the passages hold is not
supported when the passages give it another kind of unit, or the question asks for another kind.

The 0.5B model copies a number it finds and puts the question's unit on it: over "The
Zephyr-9 kettle has a warranty of three years. Its rated power is 1800 watts." it answered
"Zephyr-9 水壶重约1800公斤" (the files never give a weight) and "How heavy is the Zephyr-9
kettle?" with "It is rated at 1800 watts". The number is in the sources, so the claims
check (``grounding.check_claims``) finds it; its unit says what it measures.

Only units of a few kinds with no reading as a date are known (weight, power, volume,
length, money), in English and Chinese; a number with no known unit is never judged.
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
    "money": ("yuan", "rmb", "dollars", "dollar", "usd", "euros", "euro", "美元", "欧元", "元"),
}  # fmt: skip
_KIND_OF = {unit: kind for kind, units in _UNITS.items() for unit in units}
_QUANTITY = re.compile(
    r"(\d+(?:[.,]\d+)*)\s*("
    + "|".join(sorted(map(re.escape, _KIND_OF), key=len, reverse=True))
    + r")(?![a-z])"
)
_ASKS = {
    "weight": re.compile(r"how heavy|\bweigh|重多少|多重|重量|多少(?:公斤|千克|克|斤|吨)"),
    "power": re.compile(r"\bpower\b|wattage|功率|多少(?:瓦|千瓦)"),
    "volume": re.compile(r"capacity|\bvolume\b|容量|容积|多少(?:升|毫升)"),
    "money": re.compile(r"\bprice\b|\bcost\b|how much does .* cost|价格|售价|多少钱"),
}
"""The kind of quantity a question asks for, by its words ("How heavy", "容量多少升")."""


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
    asked = {kind for kind, words in _ASKS.items() if words.search(question.lower())}
    if asked and not any(kind in asked for _, _, kind in stated):
        number, unit, kind = stated[0]
        wanted = " or ".join(sorted(asked))
        return f"the answer gives {number} {unit}, a {kind}, where the question asks for a {wanted}"
    held = [q for passage in passages for q in quantities(passage)]
    for number, unit, kind in stated:
        kinds = {k for n, _, k in held if n == number}
        if kinds and kind not in kinds:
            units = ", ".join(sorted({u for n, u, _ in held if n == number}))
            return f"the answer gives {number} {unit}, but the sources give {number} in {units}"
    return None
