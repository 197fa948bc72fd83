"""Finding files: types judged by lstat, links kept inside the folder, any file name kept."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from kbchat.errors import BadInput
from kbchat.ingest.discover import discover, known_file, readable, source_path


def _found(root: Path, **options: bool) -> dict[str, str | None]:
    return {f.name: f.problem for f in discover([root], **options)}  # type: ignore[arg-type]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "in"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("inside")
    (root / "sub" / "b.txt").write_text("inside too")
    return root


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "token.txt").write_text("zebra-passphrase-7741")
    return secret


def test_fifo_is_reported_not_opened(folder: Path) -> None:
    os.mkfifo(folder / "pipe.txt")
    found = _found(folder)
    assert found["a.txt"] is None
    assert found["pipe.txt"] == "pipe.txt: is a named pipe (FIFO), not a regular file"


def test_socket_is_reported(tmp_path: Path) -> None:
    root = tmp_path / "s"
    root.mkdir()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        server.bind(str(root / "sock.txt"))
        assert _found(root) == {"sock.txt": "sock.txt: is a socket, not a regular file"}
    finally:
        server.close()


def test_device_reached_through_a_followed_link_is_reported(folder: Path) -> None:
    (folder / "null.txt").symlink_to("/dev/null")
    found = _found(folder, follow_symlinks=True)
    assert found["null.txt"] == "null.txt: is a character device, not a regular file"


def test_fifo_named_directly_is_reported(folder: Path) -> None:
    os.mkfifo(folder / "pipe.md")
    [found] = discover([folder / "pipe.md"])
    assert found.problem == "pipe.md: is a named pipe (FIFO), not a regular file"


def test_links_out_of_the_folder_are_not_followed(folder: Path, outside: Path) -> None:
    (folder / "leak.txt").symlink_to(outside / "token.txt")
    (folder / "sub" / "up").symlink_to(outside)
    (folder / "same.txt").symlink_to(folder / "a.txt")
    found = _found(folder)
    assert found["same.txt"] is None  # a link that stays inside is fine
    assert "outside the folder" in str(found["leak.txt"])
    assert str(outside / "token.txt") in str(found["leak.txt"])
    assert "--follow-symlinks" in str(found["leak.txt"])
    assert "outside the folder" in str(found["sub/up"])
    assert "sub/up/token.txt" not in found


def test_follow_symlinks_follows_them_and_survives_a_loop(folder: Path, outside: Path) -> None:
    (folder / "leak.txt").symlink_to(outside / "token.txt")
    (folder / "sub" / "up").symlink_to(outside)
    (folder / "sub" / "loop").symlink_to(folder)
    found = _found(folder, follow_symlinks=True)
    assert found["leak.txt"] is None
    assert found["sub/up/token.txt"] is None
    assert found["a.txt"] is None


def test_broken_link_is_reported(folder: Path) -> None:
    (folder / "gone.txt").symlink_to(folder / "missing.txt")
    assert "broken symbolic link" in str(_found(folder)["gone.txt"])


def test_undecodable_file_name_is_readable_and_maps_back(folder: Path) -> None:
    raw = os.fsencode(folder) + b"/caf\xe9.txt"
    with open(raw, "w") as handle:
        handle.write("menu of the day")
    [found] = [f for f in discover([folder]) if f.name.startswith("caf")]
    assert found.name == "caf\\xe9.txt"
    assert found.name.encode("utf-8")  # storable and printable
    assert found.location.endswith("/caf\\xe9.txt")
    assert source_path(found.location) == found.path
    assert source_path(found.location).read_text() == "menu of the day"
    again = known_file(found.name, found.location)
    assert again is not None and again.problem is None


def test_readable_leaves_valid_names_alone(tmp_path: Path) -> None:
    assert readable("中文/报告.txt") == "中文/报告.txt"
    literal = tmp_path / "odd\\x41name.txt"  # a real backslash in a name
    literal.write_text("x")
    assert source_path(str(literal)) == literal


def test_missing_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match=r"nothing\.txt: no such file or folder"):
        list(discover([tmp_path / "nothing.txt"]))
