"""``kbchat ask`` and ``kbchat chat`` against a running server (``--server URL``).

The answer is streamed from the server's ``/api/chat`` and printed as a local one is
(``kbchat.cli.chat.print_stream``); the conversation's history is the server's.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any

import typer

from kbchat.cli.base import err, print_json
from kbchat.errors import BadInput, KbchatError
from kbchat.types import Answer

if TYPE_CHECKING:  # httpx loads only when a server is asked
    from kbchat.cli.server_client import AgentEvent, ServerClient

ServerOpt = Annotated[
    str | None,
    typer.Option(
        "--server",
        envvar="KBCHAT_SERVER",
        metavar="URL",
        help="Answer with a running `kbchat serve` at URL (loads no model here).",
    ),
]
ApiKeyOpt = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        envvar="KBCHAT_API_KEY",
        metavar="KEY",
        help="API key for --server (see `kbchat keys add`).",
        show_envvar=True,
    ),
]


def ask_server(client: ServerClient, request: dict[str, Any], *, as_json: bool) -> Answer:
    """Ask one question of the server; print the answer as ``kbchat ask`` does."""
    from kbchat.cli.chat import print_stream
    from kbchat.shapes.chat import answer_info

    events = client.stream_answer(_sent(request))
    if not as_json:
        return print_stream(events)
    answer = _last_answer(events)
    print_json(answer_info(answer))
    return answer


def _sent(request: dict[str, Any]) -> dict[str, Any]:
    """The request without the options left unset (the server's settings decide those)."""
    return {key: value for key, value in request.items() if value is not None}


def _last_answer(events: Iterator[AgentEvent]) -> Answer:
    for event in events:
        if isinstance(event, Answer):
            return event
    raise KbchatError("the server's stream ended without an answer")


def chat_with_server(client: ServerClient, kbs: list[str], model: str | None) -> None:
    """The interactive loop of ``kbchat chat --server``: /kb, /agent, /model, /reset, /exit."""
    from kbchat.cli.chat import read_line

    state: dict[str, Any] = {"kbs": kbs, "model": model, "files": None, "agent": False}
    err.print(f"kbchat chat with {client.url} — /help for commands, Ctrl-D to leave", markup=False)
    while (line := read_line(state)) is not None:
        if line.startswith("/"):
            if _command(line, state, client):
                break
            continue
        if line.strip():
            _turn(client, state, line)


def _command(line: str, state: dict[str, Any], client: ServerClient) -> bool:
    """Handle a /command; True means leave."""
    from kbchat.cli.base import split_names

    word, _, arg = line[1:].partition(" ")
    arg = arg.strip()
    if word in ("exit", "quit"):
        return True
    if word == "reset":
        client.conversation_id = None
        err.print("history cleared (a new conversation on the server)")
    elif word == "kb":
        state["kbs"] = [] if arg in ("", "off") else split_names(arg)
        err.print(f"answering from {', '.join(state['kbs']) or 'the model alone'}", markup=False)
    elif word == "agent":
        state["agent"] = arg != "off"
        err.print(f"agent mode {'on' if state['agent'] else 'off'}", markup=False)
    elif word == "model":
        state["model"] = arg or None
        err.print(f"model: {arg or 'the server default'}", markup=False)
    elif word == "file":
        err.print(
            "error: /file is not available with --server; upload files on the server's page",
            markup=False,
            style="red",
        )
    else:
        err.print("/kb NAME[,NAME]|off   /agent [off]   /model NAME   /reset   /exit", markup=False)
    return False


def _turn(client: ServerClient, state: dict[str, Any], question: str) -> None:
    from kbchat.cli.chat import print_stream

    request = {
        "question": question,
        "kbs": state["kbs"],
        "model": state["model"],
        "mode": "agent" if state["agent"] else "auto",
        "conversation_id": client.conversation_id,
    }
    events = client.stream_answer(_sent(request))
    try:
        print_stream(events)
    except KeyboardInterrupt:
        err.print("\n[stopped]", markup=False)  # closing the stream cancels the answer
    except KbchatError as exc:
        err.print(f"error: {exc}", markup=False, style="red")
    finally:
        events.close()


def check_local_only(files: object, what: str) -> None:
    """Refuse an option that needs this machine's files when answering with --server."""
    if files:
        raise BadInput(f"{what} is not available with --server: upload files on the server")
