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
        description="Evaluate an arithmetic expression exactly, e.g. (1200 - 950) / 950 * 100. "
        "Use it for any calculation instead of doing it in your head.",
        parameters={
            "type": "object",
            "properties": {
                "expression": {
                    "type": "string",
                    "description": "Numbers, + - * / ** % and parentheses; sqrt(), round().",
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
    table = str.maketrans("０１２３４５６７８９（）＋－＊／．％×÷，", "0123456789()+-*/.%*/,")
    text = expression.translate(table).replace("^", "**")
    # thousands separators ("2,340") are not argument separators between digits
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)
    # a percent sign after a number is a percentage, not a modulo
    return re.sub(r"(\d+(?:\.\d+)?)\s*%(?!\s*[\d(])", r"(\1/100)", text)


def _format(value: float | int) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, float):
        return f"{value:.10g}"
    return str(value)
