"""Turning the paths a user names into (display name, file) pairs, with include/exclude globs."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from kbchat.errors import BadInput


@dataclass(frozen=True, slots=True)
class FoundFile:
    """A file to ingest; ``name`` is what the KB calls it (its path below the folder added)."""

    name: str
    path: Path


def _matches(relative: str, patterns: Sequence[str]) -> bool:
    parts = relative.split("/")
    return any(
        fnmatch.fnmatch(relative, pattern) or any(fnmatch.fnmatch(part, pattern) for part in parts)
        for pattern in patterns
    )


def discover(
    paths: Sequence[Path],
    *,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> Iterator[FoundFile]:
    """Yield the files under ``paths`` (files or folders, recursively), sorted per folder.

    A folder's files are named by their path relative to that folder; a file given
    directly is named by its file name. ``include`` globs (if any) must match, ``exclude``
    globs must not; both are tried against the relative path and each of its parts.

    Raises:
        BadInput: a path does not exist.
    """
    for given in paths:
        path = Path(given).expanduser()
        if not path.exists():
            raise BadInput(f"{given}: no such file or folder")
        if path.is_file():
            yield FoundFile(name=path.name, path=path.resolve())
            continue
        root = path.resolve()
        for folder, dirnames, filenames in os.walk(root):
            rel_folder = Path(folder).relative_to(root).as_posix()
            dirnames[:] = sorted(d for d in dirnames if not _matches(_join(rel_folder, d), exclude))
            for filename in sorted(filenames):
                relative = _join(rel_folder, filename)
                if _matches(relative, exclude):
                    continue
                if include and not _matches(relative, include):
                    continue
                yield FoundFile(name=relative, path=Path(folder) / filename)


def _join(folder: str, name: str) -> str:
    return name if folder in ("", ".") else f"{folder}/{name}"
