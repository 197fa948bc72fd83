"""kbchat.text: the one copy of the CJK character classes and language detection."""

from __future__ import annotations

import pytest

from kbchat.text import detect_language, is_han, is_han_or_punctuation, is_wide


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("保修期多长？", "zh"),
        ("How long is the warranty?", "en"),
        ("XR-7700A 的噪声是多少 dB？", "zh"),  # Chinese with a product code stays Chinese
        ("What does 保修 mean in the Warranty Terms of the XR series?", "en"),
        ("", "en"),
        ("12345 !!!", "en"),
    ],
)
def test_detect_language(text: str, language: str) -> None:
    assert detect_language(text) == language


def test_character_classes() -> None:
    assert is_han("中") and is_han("㐀") and not is_han("。") and not is_han("か")
    assert is_wide("か") and is_wide("。") and is_wide("Ａ") and not is_wide("a")
    assert is_han_or_punctuation("，") and not is_han_or_punctuation("か")
