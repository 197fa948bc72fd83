"""One line saying that the catalog database cannot be reached: where (password hidden), why,
and what to check."""

from __future__ import annotations

from kbchat.errors import BackendError


def masked_url(url: str) -> str:
    """A SQLAlchemy database URL with its password shown as ``***``."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:  # say so without echoing it: it may hold a password
        return "<malformed database URL>"


def first_line(exc: BaseException) -> str:
    """The first non-empty line of the driver's own message (SQLAlchemy wraps it in ``orig``)."""
    cause = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
    return lines[0] if lines else type(cause).__name__


def database_unreachable(url: str, exc: BaseException) -> BackendError:
    """The error for a catalog database that cannot be opened at ``url``."""
    return BackendError(
        f"cannot open the catalog database at {masked_url(url)}: {first_line(exc)}; check that "
        "the server is running (for SQLite: that the file's folder is writable) and the URL's "
        "host, port, user, password and database (setting catalog.url, KBCHAT_CATALOG__URL)"
    )
