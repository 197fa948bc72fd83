"""`kbchat keys`: the API keys of `kbchat serve`."""

from __future__ import annotations

from typing import Annotated

import typer

from kbchat.cli.base import JsonOpt, err, out, print_json

keys_app = typer.Typer(help="API keys of `kbchat serve` (stored hashed).", no_args_is_help=True)


@keys_app.command("add")
def keys_add(
    name: Annotated[str, typer.Argument(help="Who or what uses the key.")],
    kb: Annotated[list[str] | None, typer.Option(help="Knowledge base (repeat; * = all).")] = None,
    role: Annotated[str, typer.Option(help="read, write or admin.")] = "read",
) -> None:
    """Create an API key and print it (only this once: store it now)."""
    from kbchat.config import load_settings
    from kbchat.server.auth import add_key, key_store

    store = key_store(load_settings())
    key = add_key(store, name, {target: role for target in kb or ["*"]})
    out.print(key, markup=False, highlight=False)
    err.print(f"key {name!r} saved (hashed) in {store.where}; it is shown only now", markup=False)


@keys_app.command("list")
def keys_list(as_json: JsonOpt = False) -> None:
    """List API keys by name with their permissions (keys themselves are never stored)."""
    from kbchat.config import load_settings
    from kbchat.server.auth import describe_keys, key_store

    rows = describe_keys(key_store(load_settings()))
    if as_json:
        print_json(rows)
        return
    for row in rows:
        perms = ", ".join(f"{kb}: {role}" for kb, role in row["permissions"].items())
        out.print(f"{row['name']}  ({perms})", markup=False, highlight=False)


@keys_app.command("rm")
def keys_rm(name: str) -> None:
    """Delete an API key; a running server stops accepting it at once."""
    from kbchat.config import load_settings
    from kbchat.server.auth import key_store, remove_key

    remove_key(key_store(load_settings()), name)
    out.print(f"removed key {name!r}")
