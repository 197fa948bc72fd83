"""CLI flags built from the option types of ``kbchat.options``: same help, same bounds."""

from __future__ import annotations

from typing import Any

import typer

from kbchat.options import bounds


def flag(option: object, *names: str, default: str | None = None) -> Any:
    """A ``typer.Option`` for an option type: its help, and its bounds as the flag's range.

    Args:
        option: an option type such as ``kbchat.options.TopK``.
        names: the flag's names, e.g. ``"--top-k", "-k"``.
        default: where the value comes from when the flag is not given (shown in the help).
    """
    allowed = bounds(option)
    assert not (allowed.min_open or allowed.max_open), "CLI ranges are closed: use ge/le"
    help_text = allowed.description + (f" Default: the setting {default}." if default else "")
    return typer.Option(
        *names,
        help=help_text,
        min=allowed.minimum,
        max=allowed.maximum,
        show_default=default is None,
    )
