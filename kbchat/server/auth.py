"""API keys and per-knowledge-base permissions.

Keys are random strings shown once when made (``kbchat keys add``); only their sha256
is stored: in ``server.api_keys``, the keys file (``<home>/keys.json``), or, when the catalog
is shared between servers (PostgreSQL), in its ``api_keys`` table, so that every server
accepts the same keys. A key grants
a role per knowledge base (``*`` for all): read (search, chat, list), write (upload,
sync, remove, rebuild) or admin (create, delete). Keys are off on loopback by default
and required on any other address; ``server.auth = "off"`` on a non-loopback address is
refused unless ``server.insecure_no_auth`` says so explicitly.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import delete, func, insert, select
from sqlalchemy.exc import IntegrityError

from kbchat.config import ApiKeySettings, Settings
from kbchat.errors import BadInput, ConfigError, NotFound
from kbchat.kb.library import is_temporary
from kbchat.server.errors import Forbidden, Unauthorized
from kbchat.store.catalog import Catalog
from kbchat.store.catalog_schema import api_keys
from kbchat.store.reach import masked_url

Role = Literal["read", "write", "admin"]
ROLES: tuple[Role, ...] = ("read", "write", "admin")
ALL_KBS = "*"
KEY_PREFIX = "kbc-"
_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}
_KEY_LIST = TypeAdapter(list[ApiKeySettings])

log = logging.getLogger(__name__)


def hash_key(key: str) -> str:
    """The sha256 hex digest under which a key is stored."""
    return hashlib.sha256(key.encode()).hexdigest()


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server reachable from this machine only."""
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def keys_required(settings: Settings) -> bool:
    """Whether requests must carry an API key under these settings."""
    server = settings.server
    return server.auth == "on" or (server.auth == "auto" and not is_loopback(server.host))


def keys_path(settings: Settings) -> Path:
    return (settings.server.keys_file or settings.home / "keys.json").expanduser()


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling and what they may do; ``name`` None means auth is off (all allowed)."""

    name: str | None
    permissions: dict[str, Role] = field(default_factory=dict)

    @property
    def unrestricted(self) -> bool:
        return self.name is None

    def role(self, kb: str) -> Role | None:
        if is_temporary(kb):  # a conversation's files: reached through the conversation only
            return None
        if self.unrestricted:
            return "admin"
        roles = [r for r in (self.permissions.get(kb), self.permissions.get(ALL_KBS)) if r]
        return max(roles, key=ROLES.index) if roles else None

    def can(self, kb: str, role: Role) -> bool:
        granted = self.role(kb)
        return granted is not None and ROLES.index(granted) >= ROLES.index(role)

    def require(self, kb: str, role: Role) -> None:
        """Raise unless this caller has ``role`` (or more) on knowledge base ``kb``.

        Raises:
            NotFound: the caller may not even read ``kb``: the same error, word for word,
                as for a knowledge base that does not exist, so a key cannot learn which
                names exist.
            Forbidden: the caller may read ``kb`` but lacks ``role``.
        """
        if self.can(kb, role):
            return
        if kb != ALL_KBS and not self.can(kb, "read"):
            raise kb_not_found(kb)
        raise self.forbidden(kb, role)

    def forbidden(self, kb: str, role: Role) -> Forbidden:
        return Forbidden(f"API key {self.name!r} may not {_VERBS[role]} knowledge base {kb!r}")


def kb_not_found(name: str) -> NotFound:
    """The error for a knowledge base that is missing or that the caller may not read."""
    return NotFound(f"no knowledge base named {name!r}")


_VERBS = {"read": "read", "write": "write to", "admin": "administer"}


class KeyStore:
    """Where ``kbchat keys`` keeps hashed keys: the keys file, or a shared catalog's table."""

    where: str

    def read(self) -> list[ApiKeySettings]:
        raise NotImplementedError

    def insert(self, entry: ApiKeySettings) -> None:
        """Store a new key. Raises BadInput: the name is taken."""
        raise NotImplementedError

    def delete(self, name: str) -> bool:
        """Remove the key called ``name``; returns whether there was one."""
        raise NotImplementedError

    def stamp(self) -> object:
        """Changes when the stored keys change (cheap to ask)."""
        raise NotImplementedError


class FileKeys(KeyStore):
    """Keys in a JSON file readable by its owner only (``<home>/keys.json``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.where = str(path)

    def read(self) -> list[ApiKeySettings]:
        return read_keys(self.path)

    def insert(self, entry: ApiKeySettings) -> None:
        keys = self.read()
        if any(k.name == entry.name for k in keys):
            raise BadInput(
                f"a key named {entry.name!r} already exists in {self.where}; remove it first"
            )
        _write_keys(self.path, [*keys, entry])

    def delete(self, name: str) -> bool:
        keys = self.read()
        kept = [k for k in keys if k.name != name]
        if len(kept) < len(keys):
            _write_keys(self.path, kept)
        return len(kept) < len(keys)

    def stamp(self) -> object:
        try:
            info = self.path.stat()
        except FileNotFoundError:
            return None
        return (info.st_mtime, info.st_size)


class CatalogKeys(KeyStore):
    """Keys in the catalog's ``api_keys`` table (a catalog shared by several servers)."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.where = "the catalog (" + masked_url(str(catalog.engine.url)) + ")"

    def read(self) -> list[ApiKeySettings]:
        with self.catalog.engine.connect() as conn:
            rows = conn.execute(select(api_keys).order_by(api_keys.c.name)).all()
        return [
            ApiKeySettings(
                name=row.name, sha256=row.sha256, permissions=json.loads(row.permissions)
            )
            for row in rows
        ]

    def insert(self, entry: ApiKeySettings) -> None:
        try:
            with self.catalog.engine.begin() as conn:
                conn.execute(
                    insert(api_keys).values(
                        name=entry.name,
                        sha256=entry.sha256,
                        permissions=json.dumps(dict(entry.permissions)),
                        created_at=time.time(),
                    )
                )
        except IntegrityError:
            raise BadInput(
                f"a key named {entry.name!r} already exists in {self.where}; remove it first"
            ) from None

    def delete(self, name: str) -> bool:
        with self.catalog.engine.begin() as conn:
            return bool(conn.execute(delete(api_keys).where(api_keys.c.name == name)).rowcount)

    def stamp(self) -> object:
        with self.catalog.engine.connect() as conn:
            return tuple(
                conn.execute(
                    select(func.count(), func.max(api_keys.c.created_at), func.min(api_keys.c.name))
                ).one()
            )


def key_store(settings: Settings) -> KeyStore:
    """Where new keys go: the catalog when it is shared between servers, else the keys file."""
    if settings.shared_catalog:
        return CatalogKeys(Catalog(settings.catalog_url))
    return FileKeys(keys_path(settings))


class Authenticator:
    """Checks ``Authorization: Bearer <key>`` headers against the configured key hashes.

    The keys file (and a shared catalog's keys, at most every ``CATALOG_CHECK_S``) are
    re-read when they change, so keys added or removed with the CLI take effect without a
    restart.

    Raises:
        ConfigError: keys are required but none is configured, or the keys file is bad.
    """

    CATALOG_CHECK_S = 2.0

    def __init__(self, settings: Settings) -> None:
        self.required = keys_required(settings)
        self._configured = list(settings.server.api_keys)
        self._file = FileKeys(keys_path(settings))
        self._catalog = (
            CatalogKeys(Catalog(settings.catalog_url)) if settings.shared_catalog else None
        )
        self._checked = 0.0
        self._catalog_stamp: object = None
        self._lock = threading.Lock()
        self._stamp: object = None
        self._loaded = False
        self._by_hash: dict[str, ApiKeySettings] = {}
        self._reload()
        _refuse_open_network(settings)
        if self.required and not self._by_hash:
            where = f"{settings.server.host}:{settings.server.port}"
            raise ConfigError(
                f"the server binds {where}, so API keys are required (server.auth = "
                f"{settings.server.auth!r}), but none is configured: create one with "
                f'`kbchat keys add NAME --role admin`, or set server.auth = "off" explicitly'
            )

    def authenticate(self, authorization: str | None) -> Principal:
        """The caller behind an Authorization header.

        Raises:
            Unauthorized: keys are required and the header is missing or names no key.
        """
        if not self.required:
            return Principal(name=None)
        scheme, _, key = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise Unauthorized("this server needs an API key: send 'Authorization: Bearer <key>'")
        self._reload()
        with self._lock:
            entry = self._by_hash.get(hash_key(key.strip()))
        if entry is None:
            raise Unauthorized("unknown API key")
        return Principal(name=entry.name, permissions=dict(entry.permissions))

    def _reload(self) -> None:
        stamp: object = self._file.stamp()
        if self._catalog is not None:
            now = time.monotonic()
            if not self._loaded or now - self._checked >= self.CATALOG_CHECK_S:
                self._catalog_stamp = self._catalog.stamp()
                self._checked = now
            stamp = (stamp, self._catalog_stamp)
        with self._lock:
            if self._loaded and stamp == self._stamp:
                return
            try:
                stored = self._file.read()
                if self._catalog is not None:
                    stored += self._catalog.read()
            except ConfigError:
                if not self._loaded:
                    raise
                log.exception("keeping the previous API keys")
                return
            self._by_hash = {entry.sha256: entry for entry in [*self._configured, *stored]}
            self._stamp = stamp
            self._loaded = True


def _refuse_open_network(settings: Settings) -> None:
    """Refuse ``auth = "off"`` on a non-loopback host unless explicitly allowed; warn if it is."""
    server = settings.server
    if server.auth != "off" or is_loopback(server.host):
        return
    if not server.insecure_no_auth:
        raise ConfigError(
            f'server.auth = "off" with server.host = {server.host!r} would let anyone who '
            "reaches the port read, change and delete every knowledge base; refusing to start. "
            "Bind 127.0.0.1, or use API keys (`kbchat keys add NAME --role admin` and "
            'server.auth = "auto"), or allow it explicitly with server.insecure_no_auth = true '
            "(`kbchat serve --insecure-no-auth`)"
        )
    log.warning(
        'server.auth = "off" on %s (server.insecure_no_auth = true): no API keys are checked; '
        "anyone who reaches the port may read, change and delete every knowledge base",
        server.host,
    )


def read_keys(path: Path) -> list[ApiKeySettings]:
    """The hashed keys stored in a keys file (empty if it does not exist).

    Raises:
        ConfigError: the file is not a valid keys file; the message names it.
    """
    if not path.is_file():
        return []
    try:
        return _KEY_LIST.validate_json(path.read_bytes())
    except (OSError, ValidationError) as exc:
        raise ConfigError(f"keys file {path} is not valid: {exc}") from None


def add_key(store: KeyStore, name: str, permissions: Mapping[str, str]) -> str:
    """Create a key called ``name`` with ``permissions``; returns the key (shown only once).

    Args:
        store: Where it is kept (``key_store(settings)``).
        name: Who or what uses the key; unique in the store.
        permissions: Knowledge base name (or ``*``) -> read, write or admin.

    Raises:
        BadInput: the name is empty or taken, or a role is unknown.
    """
    if not name.strip():
        raise BadInput("a key needs a name")
    roles: dict[str, Role] = {}
    for kb, role in permissions.items():
        if role not in ROLES:
            raise BadInput(f"role for {kb!r} must be one of {', '.join(ROLES)}, got {role!r}")
        roles[kb] = role
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    store.insert(ApiKeySettings(name=name, sha256=hash_key(key), permissions=roles))
    return key


def remove_key(store: KeyStore, name: str) -> None:
    """Delete the key called ``name``.

    Raises:
        NotFound: no key of that name.
    """
    if not store.delete(name):
        raise NotFound(f"no key named {name!r} in {store.where}")


def describe_keys(store: KeyStore) -> list[dict[str, Any]]:
    """Names and permissions of the stored keys (never the hashes)."""
    return [{"name": k.name, "permissions": dict(k.permissions)} for k in store.read()]


def _write_keys(path: Path, keys: list[ApiKeySettings]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}")
    data = json.dumps([k.model_dump() for k in keys], indent=2, ensure_ascii=False)
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(data + "\n")
    os.replace(staging, path)
