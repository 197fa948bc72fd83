"""Logging configured at the edge: text and JSON lines with fields, secrets masked."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator

import pytest

from kbchat.errors import ConfigError
from kbchat.logging import configure_logging, redact_also


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    buffer = io.StringIO()
    yield buffer
    root = logging.getLogger()
    for handler in [h for h in root.handlers if type(h).__name__ == "_KbchatHandler"]:
        root.removeHandler(handler)
    root.setLevel(logging.WARNING)


def test_text_lines_carry_their_fields(stream: io.StringIO) -> None:
    configure_logging("info", "text", stream=stream)
    logging.getLogger("kbchat.x").info("answer", extra={"fields": {"kbs": ["a", "b"], "hits": 3}})
    logging.getLogger("kbchat.x").debug("not shown")
    (line,) = stream.getvalue().splitlines()
    assert line.endswith("INFO kbchat.x: answer kbs=a,b hits=3")


def test_json_lines_are_one_object_each(stream: io.StringIO) -> None:
    configure_logging("DEBUG", "json", stream=stream)
    log = logging.getLogger("kbchat.y")
    log.info("request %s", "GET", extra={"fields": {"status": 200, "ms": 1.5}})
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "request GET" and first["status"] == 200 and first["ms"] == 1.5
    assert first["level"] == "INFO" and first["logger"] == "kbchat.y" and "time" in first
    assert second["level"] == "ERROR" and "ValueError: boom" in second["exc"]


def test_configuring_again_replaces_the_handler(stream: io.StringIO) -> None:
    other = io.StringIO()
    configure_logging("INFO", stream=other)
    configure_logging("INFO", stream=stream)
    logging.getLogger("kbchat.z").info("once")
    assert other.getvalue() == "" and stream.getvalue().count("once") == 1


def test_lines_go_to_stderr_as_it_is_when_they_are_logged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, then = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    configure_logging("INFO")
    logging.getLogger("kbchat.e").info("while set up")
    first.close()  # pytest's capture closes the stderr it handed out, then hands out another
    monkeypatch.setattr(sys, "stderr", then)
    logging.getLogger("kbchat.e").info("after the swap")
    written = then.getvalue()
    assert "after the swap" in written and "Logging error" not in written, written


def test_http_client_info_lines_are_held_back(stream: io.StringIO) -> None:
    configure_logging("INFO", stream=stream)
    logging.getLogger("httpx").info("HTTP Request: POST https://h/v1?key=x")
    assert stream.getvalue() == ""


@pytest.mark.parametrize(
    ("level", "fmt", "named"),
    [("LOUD", "text", "KBCHAT_LOG_LEVEL"), ("INFO", "xml", "KBCHAT_LOG_FORMAT")],
)
def test_a_bad_level_or_format_names_its_setting(level: str, fmt: str, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        configure_logging(level, fmt)


def test_secrets_never_reach_a_line(stream: io.StringIO) -> None:
    configure_logging("INFO", "json", secrets=["configured-secret-value"], stream=stream)
    redact_also(["late-secret-1234"])
    log = logging.getLogger("kbchat.s")
    log.info("header Authorization: Bearer abc.def-123 sent")
    log.info("server said: invalid api_key=sk-live-0123456789abcdef")
    log.info("key %s", "kbc-" + "A" * 43)
    log.info("values", extra={"fields": {"url": "http://h/?token=configured-secret-value"}})
    try:
        raise RuntimeError("401 for late-secret-1234")
    except RuntimeError:
        log.exception("remote failed")
    text = stream.getvalue()
    for secret in ("abc.def-123", "sk-live", "kbc-AAAA", "configured-secret-value", "late-secret"):
        assert secret not in text
    assert text.count("***") >= 5
