"""Conversation history within a token budget."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from kbchat.types import Message


def fit_history(
    history: Sequence[Message], budget_tokens: int, count_tokens: Callable[[str], int]
) -> list[Message]:
    """The most recent whole turns of ``history`` whose tokens fit in ``budget_tokens``.

    System messages are not history and are dropped; the oldest turns go first.
    """
    kept: list[Message] = []
    used = 0
    for message in reversed([m for m in history if m.role != "system"]):
        cost = count_tokens(message.content) + 4
        if used + cost > budget_tokens:
            break
        kept.append(message)
        used += cost
    kept.reverse()
    while kept and kept[0].role == "assistant":
        kept.pop(0)  # a history should start with the user's turn
    return kept


def truncate_to_tokens(text: str, budget_tokens: int, count_tokens: Callable[[str], int]) -> str:
    """Cut ``text`` (at a character boundary) so it takes at most ``budget_tokens``."""
    if budget_tokens <= 0:
        return ""
    if count_tokens(text) <= budget_tokens:
        return text
    low, high = 0, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        if count_tokens(text[:middle]) <= budget_tokens:
            low = middle
        else:
            high = middle - 1
    return text[:low]
