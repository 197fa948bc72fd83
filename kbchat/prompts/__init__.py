"""Prompt templates as files (zh + en), chosen by the language of the question."""

from __future__ import annotations

from functools import cache
from importlib import resources

from kbchat.text import Language


@cache
def template(name: str, language: Language) -> str:
    """The text of ``<name>.<language>.txt`` shipped in this package."""
    path = resources.files(__package__).joinpath(f"{name}.{language}.txt")
    return path.read_text(encoding="utf-8").strip("\n")


def render(name: str, language: Language, **values: str) -> str:
    """Fill a template's ``{placeholders}``."""
    return template(name, language).format(**values)
