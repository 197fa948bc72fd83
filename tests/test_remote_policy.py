"""The retry policy and error reading shared by chat, embedding and rerank clients."""

from __future__ import annotations

import threading

import httpx
import pytest

from kbchat.remote import RetryPolicy, error_code, retry_after, server_message


def test_backoff_doubles_and_a_retry_after_wins_within_the_cap() -> None:
    policy = RetryPolicy(max_retries=3, backoff_s=0.5, max_delay_s=3.0)
    assert [policy.delay(n) for n in range(4)] == [0.5, 1.0, 2.0, 3.0]
    assert policy.delay(0, retry_after_s=2.5) == 2.5
    assert policy.delay(0, retry_after_s=120.0) == 3.0


def test_waiting_stops_when_cancelled() -> None:
    cancel = threading.Event()
    cancel.set()
    assert RetryPolicy(backoff_s=60.0).wait(0, None, cancel) is True


@pytest.mark.parametrize("field", ["max_retries", "backoff_s", "max_delay_s"])
def test_negative_settings_are_refused_by_name(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        RetryPolicy(**{field: -1})


def test_retry_after_reads_seconds_only() -> None:
    assert retry_after(httpx.Response(429, headers={"retry-after": "7"})) == 7.0
    assert retry_after(httpx.Response(429, headers={"retry-after": "Wed, 21 Oct 2015"})) is None
    assert retry_after(httpx.Response(429)) is None


@pytest.mark.parametrize(
    ("raw", "said"),
    [
        (b'{"error": {"message": "model not found", "code": "x"}}', "model not found"),
        (b'{"detail": "bad input"}', "bad input"),
        (b'{"error": "slow down"}', "slow down"),
        (b"upstream timed out", "upstream timed out"),
        (b"", "(empty body)"),
    ],
)
def test_the_servers_own_words_are_quoted(raw: bytes, said: str) -> None:
    assert server_message(raw) == said


def test_error_code_is_read_from_openai_error_bodies() -> None:
    raw = b'{"error": {"message": "too long", "code": "context_length_exceeded"}}'
    assert error_code(raw) == "context_length_exceeded"
    assert error_code(b"not json") is None and error_code(b'{"error": "x"}') is None
