"""Safe arithmetic: the expression is parsed, never ``eval``-ed (simpleeval, with no names
other than a few math functions and limits on powers and string sizes)."""

from __future__ import annotations

import math
import re
from typing import Any

from kbchat.chat.tools import ToolContext, ToolError, ToolResult
from kbchat.types import ToolSpec

_FUNCTIONS = {
    "sqrt": math.sqrt,
    "abs": abs,
    "round": round,
    "min": min,
    "max": max,
    "log": math.log,
    "log10": math.log10,
    "exp": math.exp,
    "floor": math.floor,
    "ceil": math.ceil,
}
_NAMES = {"pi": math.pi, "e": math.e}
_MAX_CHARS = 500


class Calculator:
    """``calculator(expression)``: + - * / // % ** and parentheses over numbers; sqrt, log,
    round and friends; ``50%`` reads as 0.5 and full-width digits and operators are accepted."""

    spec = ToolSpec(
        name="calculator",
        description="Evaluate an arithmetic expression exactly. Use it for any calculation "
        "instead of doing it in your head.",
        parameters={
            "type": "object",
            "properties": {
                "expression": {
                    "type": "string",
                    "description": "Numbers, + - * / ** % and parentheses; sqrt(), round().",
                    "maxLength": 200,
                }
            },
            "required": ["expression"],
            "additionalProperties": False,
        },
    )
    answers_directly = True
    """When the calculator is the only tool a question needs, ``expression = value`` is the
    answer (Qwen2.5-0.5B restating 777777 wrote 188878 in bench/agent.py)."""
    examples = (
        "What is 15% of 2,340?",
        "How much is 1234 * 5678?",
        "If the price rises from 950 to 1200, by what percentage did it rise?",
        "Compute (3.5 + 4.25) * 12",
        "1200 除以 7 等于多少？",
        "计算 365 乘以 24",
        "从 950 涨到 1200，涨了百分之几？",
        "一百二十个的 15% 是多少？算一下",
    )

    def run(self, arguments: dict[str, Any], context: ToolContext) -> ToolResult:
        expression = str(arguments.get("expression", "")).strip()
        return ToolResult(f"{expression} = {_format(evaluate(expression))}")

    def arguments_from(self, question: str) -> dict[str, Any] | None:
        """The expression a question spells out ("What is 4,821 times 37?", "144 的平方根"),
        when there is exactly one computable one; None lets the model write it."""
        expression = expression_in(question)
        return None if expression is None else {"expression": expression}


_WORD_OPERATORS = [
    (r"\s*(?:multiplied by|times|乘以|乘上|乘)\s*", " * "),
    (r"\s*(?:divided by|除以)\s*", " / "),
    (r"\s*(?:plus|加上|加)\s*", " + "),
    (r"\s*(?:minus|减去|减)\s*", " - "),
    (r"\s*(?:to the power of|的\s*(?=\d+\s*次方))\s*", " ** "),
]
_NUMBER = r"\d[\d,]*(?:\.\d+)?"
_PHRASES = [
    (rf"\bdivide\s+({_NUMBER})\s+by\s+({_NUMBER})", r"\1 / \2"),
    (rf"\bmultiply\s+({_NUMBER})\s+by\s+({_NUMBER})", r"\1 * \2"),
    (rf"\b(?:add|sum of)\s+({_NUMBER})\s+and\s+({_NUMBER})", r"\1 + \2"),
    (rf"\bsubtract\s+({_NUMBER})\s+from\s+({_NUMBER})", r"\2 - \1"),
]
_CANDIDATE = re.compile(r"(?:sqrt\()?[\d(][\d\s+\-*/().,%^]*[\d)%]")


def expression_in(question: str) -> str | None:
    """An arithmetic expression written out in ``question`` (symbols or zh/en operator
    words), rewritten in symbols; None when there is none or it does not compute."""
    text = _ascii(question)
    for pattern, replacement in _PHRASES:
        text = re.sub(pattern, replacement, text, flags=re.IGNORECASE)
    text = re.sub(rf"square root of\s*({_NUMBER})", r"sqrt(\1)", text, flags=re.IGNORECASE)
    text = re.sub(rf"({_NUMBER})\s*的\s*平方根", r"sqrt(\1)", text)
    text = re.sub(rf"({_NUMBER})\s*的\s*({_NUMBER})\s*%", r"\2% * \1", text)
    text = re.sub(r"%\s*of\s*", "% * ", text, flags=re.IGNORECASE)
    text = re.sub(r"次方", "", text)
    for pattern, symbol in _WORD_OPERATORS:
        text = re.sub(pattern, symbol, text, flags=re.IGNORECASE)
    # "a + b 再乘以 c" / "a + b, then times c": the first part is computed first
    text = re.sub(r"^(.*?\d)\s*(?:再|然后|, then|then)\s*([-+*/])", r"(\1) \2", text)
    spans = [m.group(0).strip() for m in _CANDIDATE.finditer(text)]
    spans = [s for s in spans if re.search(r"[\d)%]\s*[-+*/^]", s) or s.startswith("sqrt(")]
    if len(spans) != 1:
        return None
    try:
        evaluate(spans[0])
    except ToolError:
        return None
    return spans[0]


def evaluate(expression: str) -> float | int:
    """The value of an arithmetic ``expression``.

    Raises:
        ToolError: empty, too long, not arithmetic, or not computable (division by zero,
            a power too large); the message says which.
    """
    from simpleeval import SimpleEval

    if not expression:
        raise ToolError("the expression is empty")
    if len(expression) > _MAX_CHARS:
        raise ToolError(f"the expression is longer than {_MAX_CHARS} characters")
    text = _normalise(expression)
    evaluator = SimpleEval(functions=_FUNCTIONS, names=_NAMES)
    try:
        value = evaluator.eval(text)
    except ZeroDivisionError:
        raise ToolError(f"{expression}: division by zero") from None
    except Exception as exc:  # simpleeval raises many types; all mean "not computable"
        raise ToolError(
            f"{expression!r} is not an arithmetic expression I can compute: {exc}"
        ) from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ToolError(f"{expression!r} does not give a number")
    return value


def _normalise(expression: str) -> str:
    # a percent sign after a number is a percentage, not a modulo
    return re.sub(r"(\d+(?:\.\d+)?)\s*%(?!\s*[\d(])", r"(\1/100)", _ascii(expression))


def _ascii(expression: str) -> str:
    """Full-width digits and operators as ASCII, ^ as **, thousands separators dropped."""
    table = str.maketrans("０１２３４５６７８９（）＋－＊／．％×÷，", "0123456789()+-*/.%*/,")
    text = expression.translate(table).replace("^", "**")
    # thousands separators ("2,340") are not argument separators between digits
    return re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)


def _format(value: float | int) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, float):
        return f"{value:.10g}"
    return str(value)
