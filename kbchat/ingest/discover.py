"""Turning the paths a user names into (display name, file) pairs, with include/exclude globs.

Nothing here opens a file: each entry's type comes from ``lstat``, so a named pipe, socket
or device is reported (``FoundFile.problem``) instead of being read, and a symbolic link
that leads out of the folder being added is not followed unless the caller asks for it.
File names the OS gives as undecodable bytes get a readable name (``readable``) that maps
back to the real path (``source_path``).
"""

from __future__ import annotations

import fnmatch
import os
import re
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from kbchat.errors import BadInput

_ESCAPED_BYTE = re.compile(r"\\x([0-9a-f]{2})")
_KINDS = {
    stat.S_IFIFO: "a named pipe (FIFO)",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFDIR: "a folder",
}


@dataclass(frozen=True, slots=True)
class FoundFile:
    """A file to ingest.

    Attributes:
        name: what the KB calls it (its path below the folder added), always valid UTF-8.
        path: the file on disk (may hold surrogate escapes for undecodable bytes).
        problem: why the file is refused without being opened (not a regular file, a
            link out of the folder), or None.
    """

    name: str
    path: Path
    problem: str | None = None

    @property
    def location(self) -> str:
        """``path`` as text that can be stored and shown (see ``readable``)."""
        return readable(str(self.path))

    def size_on_disk(self) -> int:
        """The file's size in bytes, or 0 when it cannot be read (it fails later, saying why)."""
        try:
            return self.path.stat().st_size
        except OSError:
            return 0


def readable(text: str) -> str:
    """A file name or path with undecodable bytes shown as ``\\xNN`` (valid UTF-8 text).

    ``os`` hands back bytes that are not UTF-8 as lone surrogates (PEP 383); those cannot be
    stored in a database or printed, so each becomes a four-character ``\\xNN`` escape.
    """
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def source_path(stored: str) -> Path:
    """The file a stored (``readable``) path names: undoes the ``\\xNN`` escapes if needed."""
    path = Path(stored)
    if "\\x" not in stored or os.path.lexists(path):
        return path
    raw = _ESCAPED_BYTE.sub(lambda m: chr(0xDC00 + int(m.group(1), 16)), stored)
    return Path(raw)


def known_file(name: str, stored_path: str) -> FoundFile | None:
    """A file the KB already holds, at its stored path; None if nothing is there now."""
    path = source_path(stored_path)
    try:
        info = path.stat()
    except OSError:
        return None
    return FoundFile(name, path, _problem(name, file_kind_problem(info.st_mode)))


def file_kind_problem(mode: int) -> str | None:
    """Why an ``lstat``/``stat`` mode is not a file to read, or None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    kind = _KINDS.get(stat.S_IFMT(mode))
    return f"is {kind}, not a regular file" if kind else "is not a regular file"


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
    follow_symlinks: bool = False,
) -> Iterator[FoundFile]:
    """Yield the files under ``paths`` (files or folders, recursively), sorted per folder.

    A folder's files are named by their path relative to that folder; a file given
    directly is named by its file name. ``include`` globs (if any) must match, ``exclude``
    globs must not; both are tried against the relative path and each of its parts.

    A symbolic link inside a folder is followed only if it resolves inside that folder
    (links to folders are not descended), unless ``follow_symlinks``; a link leaving the
    folder, a broken link and anything that is not a regular file come back with a
    ``problem`` and are never opened. A path named directly is taken as given.

    Raises:
        BadInput: a path does not exist.
    """
    for given in paths:
        path = Path(given).expanduser()
        try:
            info = path.stat()
        except FileNotFoundError:
            raise BadInput(f"{readable(str(given))}: no such file or folder") from None
        except OSError as exc:
            raise BadInput(f"{readable(str(given))}: cannot read ({exc.strerror})") from None
        if not stat.S_ISDIR(info.st_mode):
            name = readable(path.name)
            yield FoundFile(name, path.resolve(), _problem(name, file_kind_problem(info.st_mode)))
            continue
        yield from _walk(path.resolve(), include, exclude, follow_symlinks)


def _walk(
    root: Path, include: Sequence[str], exclude: Sequence[str], follow_symlinks: bool
) -> Iterator[FoundFile]:
    seen: set[tuple[int, int]] = set()
    for folder, dirnames, filenames in os.walk(root, followlinks=follow_symlinks):
        if follow_symlinks:  # a link back up the tree must not loop forever
            info = os.stat(folder)
            if (info.st_dev, info.st_ino) in seen:
                dirnames[:] = []
                continue
            seen.add((info.st_dev, info.st_ino))
        rel_folder = Path(folder).relative_to(root).as_posix()
        kept = []
        for dirname in sorted(dirnames):
            relative = _join(rel_folder, dirname)
            if _matches(relative, exclude):
                continue
            link = Path(folder) / dirname
            if not follow_symlinks and link.is_symlink():
                if not _inside(link, root):  # a link inside the folder is walked anyway
                    yield FoundFile(
                        readable(relative), link, _problem(readable(relative), _outside(link))
                    )
                continue
            kept.append(dirname)
        dirnames[:] = kept
        for filename in sorted(filenames):
            relative = _join(rel_folder, filename)
            if _matches(relative, exclude) or (include and not _matches(relative, include)):
                continue
            found = Path(folder) / filename
            name = readable(relative)
            problem = _entry_problem(found, root, follow_symlinks)
            yield FoundFile(name, found, _problem(name, problem))


def _entry_problem(path: Path, root: Path, follow_symlinks: bool) -> str | None:
    """Why a folder entry is not read, judged from ``lstat`` (and the link's target)."""
    try:
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            if not follow_symlinks and not _inside(path, root):
                return _outside(path)
            if not path.exists():
                return f"is a broken symbolic link (to {readable(os.readlink(path))})"
            info = path.stat()
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    return file_kind_problem(info.st_mode)


def _inside(link: Path, root: Path) -> bool:
    return Path(os.path.realpath(link)).is_relative_to(root)


def _outside(link: Path) -> str:
    target = readable(os.path.realpath(link))
    return (
        f"is a symbolic link to {target}, outside the folder being added; not followed "
        "(pass --follow-symlinks to follow links)"
    )


def _problem(name: str, reason: str | None) -> str | None:
    return None if reason is None else f"{name}: {reason}"


def _join(folder: str, name: str) -> str:
    return name if folder in ("", ".") else f"{folder}/{name}"
