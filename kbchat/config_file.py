"""Changing ``kbchat.toml`` from kbchat (``models`` commands, the page's settings editor).

Edits go through tomlkit, so the user's comments, order and formatting stay. A change is
validated as a whole (the edited file's values over the defaults and the environment, as
``load_settings`` builds them) before the file is replaced atomically; an invalid change
leaves the file as it was and raises ``ConfigError`` naming the key.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.exceptions import TOMLKitError
from tomlkit.toml_document import TOMLDocument

from kbchat.config import DEFAULT_HOME, Settings, load_settings
from kbchat.errors import ConfigError

Edit = Callable[[TOMLDocument], None]


def config_path(environ: Mapping[str, str] | None = None) -> Path:
    """The file kbchat reads (and writes): ``KBCHAT_CONFIG``, else ``<home>/kbchat.toml``."""
    environ = os.environ if environ is None else environ
    if explicit := environ.get("KBCHAT_CONFIG"):
        return Path(explicit).expanduser()
    return Path(environ.get("KBCHAT_HOME") or DEFAULT_HOME).expanduser() / "kbchat.toml"


def read_document(path: Path) -> TOMLDocument:
    """``path`` as an editable document (empty when the file does not exist yet)."""
    if not path.is_file():
        return tomlkit.document()
    try:
        return tomlkit.parse(path.read_text(encoding="utf-8"))
    except TOMLKitError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None


def change_config(edit: Edit, environ: Mapping[str, str] | None = None) -> Settings:
    """Apply ``edit`` to the config file, check the result, write it; return the new Settings.

    Raises:
        ConfigError: the edited settings are invalid (nothing is written), or the file
            cannot be read or written.
    """
    environ = dict(os.environ if environ is None else environ)
    path = config_path(environ)
    document = read_document(path)
    edit(document)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            stream.write(tomlkit.dumps(document))
        settings = _check(tmp, path, environ)
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return settings


def _check(tmp: Path, path: Path, environ: dict[str, str]) -> Settings:
    """The settings the edited file gives (the environment still overrides it)."""
    try:
        return load_settings(environ={**environ, "KBCHAT_CONFIG": str(tmp)})
    except ConfigError as exc:
        raise ConfigError(f"not saved: {str(exc).replace(str(tmp), str(path))}") from None


def table(document: TOMLDocument | Any, *keys: str) -> Any:
    """The table at ``keys`` (created when missing), e.g. ``table(doc, "models", "big")``."""
    node = document
    for key in keys:
        if key not in node:
            node[key] = tomlkit.table()
        node = node[key]
    return node
