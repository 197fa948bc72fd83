"""The current date and time (the model has no clock: its training data ends in the past)."""

from __future__ import annotations

import re
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from kbchat.chat.tools import ToolContext, ToolError, ToolResult
from kbchat.types import ToolSpec

_WEEKDAYS_ZH = "一二三四五六日"
_PLACE = re.compile(
    r"\b(?:in|at)\s+[A-Z][a-z]+|(?i:time ?zone)|\b(?:UTC|GMT)\b|[\u4e00-\u9fff]{2,}(?:时间|时区)"
)


class Clock:
    """``current_time(timezone?)``: ISO date and time, weekday, and the IANA zone used."""

    spec = ToolSpec(
        name="current_time",
        description="Today's date, the current time and weekday. Use it for any question "
        "about today, now, this year, or how long until/since a date.",
        parameters={
            "type": "object",
            "properties": {
                "timezone": {
                    "type": "string",
                    "description": "IANA zone such as Asia/Shanghai; default: the server's.",
                }
            },
            "additionalProperties": False,
        },
    )
    examples = (
        "What is today's date?",
        "What day of the week is it today?",
        "What time is it now?",
        "How many days are left until the end of the year?",
        "今天几号？",
        "现在几点了？",
        "今天星期几？",
        "今年是哪一年？",
    )

    def arguments_from(self, question: str) -> dict[str, Any] | None:
        """No arguments (the server's zone) unless the question names a place or zone; then
        the model writes the zone. Qwen2.5-0.5B otherwise adds a zone of its own choosing
        ("Asia/Shanghai" for "What's the date today?" in bench/agent.py)."""
        return None if _PLACE.search(question) else {}

    def run(self, arguments: dict[str, Any], context: ToolContext) -> ToolResult:
        now = context.now()
        zone_name = arguments.get("timezone")
        if zone_name:
            try:
                now = now.astimezone(ZoneInfo(str(zone_name)))
            except (ZoneInfoNotFoundError, ValueError):
                raise ToolError(
                    f"unknown time zone {zone_name!r} (use an IANA name such as Asia/Shanghai)"
                ) from None
        zone = str(now.tzinfo) if now.tzinfo else "local"
        weekday = f"{now.strftime('%A')} (星期{_WEEKDAYS_ZH[now.weekday()]})"
        return ToolResult(
            f"Now: {now.isoformat(timespec='seconds')} ({zone}); date {now.date().isoformat()}, "
            f"{weekday}, time {now.strftime('%H:%M')}."
        )
