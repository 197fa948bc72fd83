"""Whom the generation queue takes turns between."""

from __future__ import annotations

from starlette.requests import Request

from kbchat.server.auth import Principal
from kbchat.server.generation import caller_key


def request_from(host: str) -> Request:
    return Request({"type": "http", "method": "POST", "headers": [], "client": (host, 5000)})


def test_callers_are_api_keys_or_else_client_addresses() -> None:
    alice = Principal(name="alice")
    assert caller_key(request_from("10.0.0.1"), alice) == caller_key(
        request_from("10.0.0.2"), alice
    )
    anonymous = Principal(name=None)
    assert caller_key(request_from("10.0.0.1"), anonymous) != caller_key(
        request_from("10.0.0.2"), anonymous
    )
    assert caller_key(request_from("alice"), anonymous) != caller_key(request_from("x"), alice)
