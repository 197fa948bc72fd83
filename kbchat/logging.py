"""Logging, configured once by the edges (the CLI, ``kbchat serve``); modules only log.

Library modules call ``logging.getLogger(__name__)`` and pass structured fields as
``extra={"fields": {...}}``; :func:`configure_logging` writes them as ``key=value`` after the
message (text) or as keys of one JSON object per line (json, for servers and log shippers).
Every line passes :class:`RedactSecrets`, which masks bearer tokens, kbchat API keys and any
secret handed to it, so a key cannot reach a log file even through an exception message.

The JSON formatter is a few lines over the standard library's ``logging``: a dependency
(python-json-logger) would add nothing kbchat needs.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import IO, Any, Literal

from kbchat.errors import ConfigError

LogFormat = Literal["text", "json"]
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
FORMATS: tuple[LogFormat, ...] = ("text", "json")
QUIET_LIBRARIES = ("httpx", "httpcore", "urllib3", "filelock", "multipart", "jieba")
"""Third-party loggers held at WARNING: their INFO lines repeat ours or name full URLs."""

FILE_LIBRARIES = ("pypdf", "PIL", "openpyxl", "docx", "pptx", "bm25s", "rapidocr_onnxruntime")
"""Parsers and indexers whose complaints about one file belong in that file's error (kbchat
reports them there), not on stderr: below ERROR they are shown only at --log-level DEBUG."""

NOISY_LIBRARIES = ("grpc", "pymilvus", "milvus_lite", "faiss")
"""Libraries whose own lines are noise to a kbchat user (Milvus Lite's embedded gRPC server logs
"Method not implemented" tracebacks on a successful add; faiss reports which CPU build it
loaded): shown only at --log-level DEBUG."""

_MASK = "***"
_TOKEN_PATTERNS = (
    re.compile(r"(?i)(bearer\s+)[^\s\"',;]+"),
    re.compile(r"\bkbc-[A-Za-z0-9_-]{8,}"),
    re.compile(r"\bsk-[A-Za-z0-9_-]{8,}"),
    re.compile(
        r"(?i)((?:api[_-]?key|authorization|password|secret|token)[\"']?\s*[:=]\s*[\"']?)[^\s\"',;&]+"
    ),
)


class RedactSecrets(logging.Filter):
    """Masks secrets in a record's message, arguments, fields and exception text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, _MASK)
        for pattern in _TOKEN_PATTERNS:
            text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + _MASK, text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.redact(record.getMessage())
        record.args = None
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            record.fields = {
                k: self.redact(v) if isinstance(v, str) else v for k, v in fields.items()
            }
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        return True


def _value(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    text = str(value)
    return json.dumps(text, ensure_ascii=False) if (" " in text or not text) else text


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message key=value ...``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        fields = getattr(record, "fields", None) or {}
        return " ".join([line, *(f"{k}={_value(v)}" for k, v in fields.items())])


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, fields, exc."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None) or {}
        entry.update({k: v for k, v in fields.items() if k not in entry})
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False, default=str)


class _KbchatHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler :func:`configure_logging` installs (and replaces when called again).

    Without a stream of its own it writes to ``sys.stderr`` as it is when a line is logged,
    not as it was when logging was set up: a stderr replaced since (pytest's capture, which
    closes the one it handed out; a redirect) gets the lines, and none goes to a closed file
    ("Logging error: I/O operation on closed file").
    """

    def __init__(self, stream: IO[str] | None = None) -> None:
        logging.Handler.__init__(self)
        self._stream = stream

    @property
    def stream(self) -> IO[str]:
        return sys.stderr if self._stream is None else self._stream

    @stream.setter
    def stream(self, value: IO[str] | None) -> None:
        self._stream = value


def configure_logging(
    level: str = "WARNING",
    fmt: str = "text",
    *,
    secrets: Iterable[str] = (),
    stream: IO[str] | None = None,
) -> None:
    """Send every logger's lines at ``level`` or above to ``stream`` (default stderr).

    Calling it again replaces the handler it installed before; other handlers stay.

    Args:
        level: DEBUG, INFO, WARNING, ERROR or CRITICAL (any case).
        fmt: ``text`` (one readable line) or ``json`` (one object per line).
        secrets: Values to mask wherever they appear (API keys from settings).
        stream: Where lines go (default: ``sys.stderr`` as it is at each line).

    Raises:
        ConfigError: an unknown level or format (naming --log-level / KBCHAT_LOG_LEVEL or
            --log-format / KBCHAT_LOG_FORMAT).
    """
    name = level.upper()
    if name not in LEVELS:
        raise ConfigError(
            f"log level (--log-level, KBCHAT_LOG_LEVEL) must be one of {', '.join(LEVELS)}, "
            f"got {level!r}"
        )
    if fmt not in FORMATS:
        raise ConfigError(
            f"log format (--log-format, KBCHAT_LOG_FORMAT) must be one of {', '.join(FORMATS)}, "
            f"got {fmt!r}"
        )
    handler = _KbchatHandler(stream)
    # libraries that set their own logger's level on import (bm25s: DEBUG) still pass here
    handler.setLevel(name)
    if name != "DEBUG":
        handler.addFilter(_quiet_file_libraries)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RedactSecrets(secrets))
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _KbchatHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(name)
    quiet = max(logging.WARNING, logging.getLevelNamesMapping()[name])
    for library in QUIET_LIBRARIES:
        logging.getLogger(library).setLevel(quiet)


def _quiet_file_libraries(record: logging.LogRecord) -> bool:
    library = record.name.split(".", 1)[0]
    if library in NOISY_LIBRARIES:
        return False
    return record.levelno >= logging.ERROR or library not in FILE_LIBRARIES


def redact_also(secrets: Iterable[str]) -> None:
    """Mask these values too in the lines of the handler :func:`configure_logging` installed
    (for secrets known only once settings are loaded)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, _KbchatHandler):
            for found in handler.filters:
                if isinstance(found, RedactSecrets):
                    merged = {*found.secrets, *(s for s in secrets if len(s) >= 4)}
                    found.secrets = sorted(merged, key=len, reverse=True)
