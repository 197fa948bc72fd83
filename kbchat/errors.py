"""The small exception hierarchy of kbchat; each class maps to one HTTP status."""

from __future__ import annotations

import difflib
from collections.abc import Sequence


class KbchatError(Exception):
    """Base class of every error kbchat raises on purpose."""

    http_status = 500


class ConfigError(KbchatError):
    """A setting is missing, malformed or names something unknown."""

    http_status = 400


class NotFound(KbchatError):
    """A knowledge base, file, model or other named thing does not exist."""

    http_status = 404


_LISTED = 10


def not_found_among(what: str, name: str, where: str, known: Sequence[str]) -> NotFound:
    """A ``NotFound`` for ``name`` that suggests the closest of ``known`` and lists some of them.

    ``what`` names the kind ("file"), ``where`` the place ("knowledge base 'docs'"). At most
    ten known names are listed, then how many more there are; the suggestion is
    ``difflib.get_close_matches`` (ratio >= 0.6, its default cut-off).
    """
    message = f"no {what} {name!r} in {where}"
    if not known:
        return NotFound(f"{message}; it has none")
    close = difflib.get_close_matches(name, known, n=1)
    listed = ", ".join(known[:_LISTED])
    more = f", … ({len(known) - _LISTED} more)" if len(known) > _LISTED else ""
    noun = what if len(known) == 1 else f"{what}s"
    listing = f"{len(known)} {noun}: {listed}{more}"
    if close:
        return NotFound(f"{message}; did you mean {close[0]!r}? It has {listing}")
    return NotFound(f"{message}; it has {listing}")


class BadInput(KbchatError):
    """The user's input (file, query, parameter) cannot be processed.

    ``param`` names the request field at fault, when there is one (OpenAI's ``param``).
    """

    http_status = 422

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class Unsupported(BadInput):
    """A valid request this backend or model cannot honour (e.g. a grammar on a remote model)."""


class ContextLengthExceeded(BadInput):
    """The prompt (plus the answer budget) does not fit the model's context window."""


class Conflict(KbchatError):
    """The request contradicts existing state (e.g. a KB built with another embedder)."""

    http_status = 409


class ServiceUnavailable(KbchatError):
    """The work cannot be accepted now (e.g. the server is shutting down); retry later."""

    http_status = 503


class BackendError(KbchatError):
    """A backend (model server, store, OCR engine) failed."""

    http_status = 502


class MissingDependency(KbchatError):
    """An optional dependency is not installed; the message says how to install it."""

    http_status = 501

    def __init__(self, package: str, extra: str, purpose: str) -> None:
        super().__init__(
            f"{purpose} needs the Python package {package!r}, which is not installed; "
            f"install it with: pip install 'kbchat[{extra}]'"
        )
        self.package = package
        self.extra = extra
