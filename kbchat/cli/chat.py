"""`kbchat ask` (one shot), `kbchat chat` (interactive) and `kbchat eval answers`."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from kbchat.cli.base import build_services, print_json, progress_bar, split_names
from kbchat.cli.flags import flag
from kbchat.cli.kb import EXIT_FILES_FAILED
from kbchat.cli.remote_chat import ApiKeyOpt, ServerOpt
from kbchat.errors import BadInput, KbchatError
from kbchat.options import MaxTokens, NoHit, NoHitName, Threshold, TopK
from kbchat.types import Answer, Message

if TYPE_CHECKING:
    from kbchat.app import Services
    from kbchat.chat.agent import AgentEvent
    from kbchat.chat.rag import ChatOptions
    from kbchat.config import Settings
    from kbchat.eval.answers import AnswerReport, AnswerResult
    from kbchat.kb.knowledge_base import FileOutcome, KnowledgeBase
    from kbchat.types import ToolStep

err = Console(stderr=True)


def _events(
    services: Services,
    kb_names: Sequence[str],
    question: str,
    model_name: str | None,
    history: Sequence[Message],
    options: ChatOptions,
    cancel: threading.Event | None = None,
    files_kb: KnowledgeBase | None = None,
    agent: bool = False,
    web: bool = False,
) -> Iterator[AgentEvent]:
    if agent:
        names = [*kb_names, *([files_kb.name] if files_kb is not None else [])]
        from kbchat.chat.agent import stream_agent

        return stream_agent(
            services, question, model_name=model_name, kbs=names, history=history, cancel=cancel
        )
    if web:
        from kbchat.chat.web_chat import stream_web_answer, web_options

        return stream_web_answer(
            services,
            question,
            model_name=model_name,
            history=history,
            options=web_options(options),
            cancel=cancel,
        )
    from kbchat.chat.files import answer_sources
    from kbchat.chat.overview import overview_answer, overview_source
    from kbchat.chat.plain import stream_chat
    from kbchat.chat.rag import stream_answer
    from kbchat.options import summary_options

    model = services.models.get(model_name)
    kbs, options = answer_sources(
        [services.library.get(name) for name in kb_names],
        files_kb,
        model,
        options,
        whole_tokens=services.settings.files.whole_file_tokens,
    )
    if not kbs:
        return stream_chat(model, question, history=history, options=options, cancel=cancel)
    if (summarised := overview_source(kbs, question)) is not None:
        summary = summary_options(services.settings, model=model_name)
        return overview_answer(model, summarised, question, options=summary, cancel=cancel)
    return stream_answer(
        model,
        kbs,
        question,
        history=history,
        options=options,
        reranker=services.reranker(),
        cancel=cancel,
    )


def _attach(
    services: Services, conversation: str, paths: Sequence[Path], *, required: bool
) -> tuple[KnowledgeBase | None, bool]:
    """Load ``paths`` into the conversation's temporary knowledge base, with progress.

    Each file that fails says why (as in ``kb add``). Returns the knowledge base (None when
    no file was given) and whether some file failed. When ``required`` and no file loaded,
    raises BadInput: one line naming each file and why, as the question cannot be answered.
    """
    from kbchat.cli.listener import RichListener

    if not paths:
        return None, False
    chats = services.file_chats()
    progress = progress_bar()
    with progress:  # failures are said after the bar, once: per file, or in the one error
        listener = RichListener(progress, show_failures=False)
        outcomes = chats.attach(conversation, None, paths, listener=listener)
    loaded = any(o.status in ("indexed", "unchanged") for o in outcomes)
    if required and not loaded:
        reasons = "; ".join(o.error or f"{o.name}: {o.status}" for o in outcomes)
        raise BadInput(
            f"no attached file could be read ({reasons}), so the question was not answered"
        )
    _report_files(outcomes)
    return chats.find(conversation, None), not all(
        o.status in ("indexed", "unchanged") for o in outcomes
    )


def _report_files(outcomes: Sequence[FileOutcome]) -> None:
    for outcome in outcomes:
        if outcome.status in ("skipped", "failed"):
            reason = outcome.error or outcome.name
            err.print(f"{outcome.status}: {reason}", markup=False, highlight=False)
        elif outcome.status in ("indexed", "unchanged"):
            plural = "" if outcome.chunks == 1 else "s"
            err.print(f"attached {outcome.name} ({outcome.chunks} chunk{plural})", markup=False)


def print_stream(events: Iterator[AgentEvent]) -> Answer:
    from kbchat.types import ToolStep

    answer: Answer | None = None
    for event in events:
        if isinstance(event, Answer):
            answer = event
        elif isinstance(event, ToolStep):
            _print_step(event)
        else:
            sys.stdout.write(event)
            sys.stdout.flush()
    sys.stdout.write("\n")
    if answer is None:
        raise KbchatError("the model stream ended without an answer")
    for citation in answer.citations:
        where = f" p.{citation.page}" if citation.page else ""
        err.print(
            f"  [{citation.marker}] {citation.file}{where} (score {citation.score:.2f}): "
            f"{citation.quote}",
            markup=False,
            highlight=False,
            soft_wrap=True,  # rich would move a Chinese quote (one unbroken word) to its own line
        )
    if answer.closest:
        title = "closest passages" if answer.outcome == "refused" else "closest passages (not used)"
        err.print(f"  {title}:", markup=False, style="dim")
    for citation in answer.closest:
        where = f" p.{citation.page}" if citation.page else ""
        err.print(
            f"  - {citation.file}{where} (score {citation.score:.2f}): {citation.quote}",
            markup=False,
            highlight=False,
            style="dim",
            soft_wrap=True,
        )
    for notice in answer.notices:
        err.print(f"note: {notice}", markup=False, style="yellow", soft_wrap=True)
    return answer


def _print_step(step: ToolStep) -> None:
    """A tool call on stderr: the call when it starts, its result (or error) and time after."""
    if not step.done:
        arguments = json.dumps(step.arguments, ensure_ascii=False)
        err.print(f"→ {step.tool} {arguments}", markup=False, highlight=False, style="cyan")
        return
    took = f" ({step.ms:.0f} ms)" if step.ms is not None else ""
    if step.error is not None:
        err.print(f"← {step.tool} failed{took}: {step.error}", markup=False, style="red")
        return
    result = (step.result or "").replace("\n", " ")
    shown = result if len(result) <= 200 else result[:200] + "…"
    err.print(f"← {step.tool}{took}: {shown}", markup=False, highlight=False, style="dim")


QUESTION_FORMAT = "\n\n".join(
    [
        "Question set: one JSON object a line.",
        'Answerable: {"id": "q1", "question": "How long is the warranty?", "answers": '
        '["two years", "2 years"], "gold_doc_ids": ["warranty"], "split": "test"} is correct '
        'when the answer contains one of "answers" (or, given "answers_required": '
        '[["a", "a2"], ["b"]], a member of every group).',
        'Unanswerable: {"id": "q2", "question": "Which port does it use?", "answerable": false} '
        'is correct when the answer declines; a question without "answers" is unanswerable too.',
        '"gold_doc_ids" name the files that hold the answer by stem ("warranty" for '
        'warranty.pdf) for the citation hit rate; "split" is what --split selects.',
    ]
)


def _progress(row: AnswerResult) -> None:
    kind = "" if row.answerable else " (unanswerable)"
    mark = "ok " if row.correct else "-- "
    err.print(f"{mark}{row.id}{kind}: {row.answer[:80]!r}", markup=False, highlight=False)


def _percent(share: float | None) -> str:
    return "n/a" if share is None else f"{100 * share:.1f}%"


REPORT_LAYOUT: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("questions", ("answered_from_kb",)),
    ("answerable", ("accuracy", "false_refusals", "citation_hit_rate")),
    ("unanswerable", ("declined_unanswerable",)),
    ("median_ttft_s", ("median_ttft_answerable_s", "median_ttft_unanswerable_s", "median_total_s")),
)
"""The lines `eval answers` prints: each key of ``AnswerReport.summary()`` (its --json), the
first of a line followed by the ones that break it down."""
_REPORT_LABELS = {
    "answered_from_kb": "answered from the knowledge base",
    "false_refusals": "false refusals",
    "citation_hit_rate": "citation hit rate",
    "declined_unanswerable": "declined",
    "median_ttft_s": "median TTFT",
    "median_ttft_answerable_s": "answerable",
    "median_ttft_unanswerable_s": "unanswerable",
    "median_total_s": "median total time",
}


def _report_lines(report: AnswerReport) -> str:
    summary = report.summary()

    def shown(key: str) -> str:
        value = summary[key]
        if value is None:
            text = "n/a"
        elif key.endswith("_s"):
            text = f"{value:.2f}s"
        elif isinstance(value, float):
            text = _percent(value)
        else:
            text = str(value)
        return f"{_REPORT_LABELS.get(key, key)} {text}"

    return "\n".join(
        f"{shown(head)}: {', '.join(shown(key) for key in rest)}" for head, rest in REPORT_LAYOUT
    )


def eval_answers(
    kb: Annotated[str, typer.Argument(metavar="KB[,KB...]", help="Knowledge base(s).")],
    queries: Annotated[
        Path, typer.Argument(help="Question set, JSONL (format below).", show_default=False)
    ],
    split: Annotated[str | None, typer.Option(help="Only questions of this split.")] = None,
    limit: Annotated[int | None, typer.Option(help="At most this many questions.")] = None,
    model: Annotated[str | None, typer.Option(help="Model name (see settings).")] = None,
    top_k: Annotated[int | None, flag(TopK, "--top-k", "-k", default="chat.top_k")] = None,
    max_tokens: Annotated[int | None, flag(MaxTokens, default="chat.max_tokens")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Answer accuracy, unanswerable questions declined, false refusals and median time to
    first token over a question set, answered as `kbchat ask` would.
    """
    from kbchat.config import load_settings
    from kbchat.eval.answers import evaluate_answers
    from kbchat.eval.retrieval import load_queries
    from kbchat.options import answer_search_options, chat_options

    questions = load_queries(queries, split=split, limit=limit)
    settings = load_settings()
    services = build_services(settings)
    try:
        names = split_names(kb)
        options = chat_options(
            settings, answer_search_options(settings, top_k=top_k), max_tokens=max_tokens
        )

        def answer(question: str) -> Answer:
            events = _events(services, names, question, model, [], options)
            return next(e for e in events if isinstance(e, Answer))

        report = evaluate_answers(answer, questions, on_question=_progress)
    finally:
        services.close()
    if as_json:
        print_json(report.to_json())
        return
    err.print(_report_lines(report), markup=False)


def ask(
    kb: Annotated[
        str | None, typer.Argument(metavar="KB[,KB...]", help="Knowledge base(s).")
    ] = None,
    question: Annotated[str | None, typer.Argument(help="Your question.")] = None,
    no_kb: Annotated[bool, typer.Option("--no-kb", help="Ask the model alone.")] = False,
    agent: Annotated[
        bool,
        typer.Option(
            "--agent",
            help="Let the model use tools: KB search, calculator, clock, sheet SQL, summaries.",
        ),
    ] = False,
    kb_option: Annotated[
        str | None,
        typer.Option("--kb", metavar="KB[,KB...]", help="Knowledge base(s), as an option."),
    ] = None,
    web: Annotated[
        bool, typer.Option("--web", help="Answer from a web search (see web_search settings).")
    ] = False,
    files: Annotated[
        list[Path] | None,
        typer.Option(
            "--file", "-f", help="Answer from this file (repeatable); no knowledge base needed."
        ),
    ] = None,
    model: Annotated[str | None, typer.Option(help="Model name (see settings).")] = None,
    top_k: Annotated[int | None, flag(TopK, "--top-k", "-k", default="chat.top_k")] = None,
    threshold: Annotated[float | None, flag(Threshold, default="retrieval.threshold")] = None,
    no_hit: Annotated[NoHitName | None, flag(NoHit, default="chat.no_hit")] = None,
    max_tokens: Annotated[int | None, flag(MaxTokens, default="chat.max_tokens")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
    server: ServerOpt = None,
    api_key: ApiKeyOpt = None,
) -> None:
    """Ask one question; the answer streams, then its sources.

    With --file, the files are loaded into a temporary knowledge base (deleted after
    the answer) and the question is answered from them, and from KB if one is named.
    With --server, a running `kbchat serve` answers (no model loads here).
    """
    if agent and web:
        raise BadInput(
            "--agent and --web are two modes: use --agent (it searches the web when "
            "web_search is set up) or --web"
        )
    if kb_option is not None:
        if question is not None:
            raise BadInput("give the knowledge base once: as KB or as --kb, not both")
        kb, question = kb_option, kb
    elif (no_kb or files or agent or web) and question is None:
        kb, question = None, kb
    if question is None or (kb is None and not (no_kb or files or agent or web)):
        raise BadInput(
            "usage: kbchat ask KB QUESTION, kbchat ask --file FILE QUESTION, "
            "kbchat ask --agent [--kb KB] QUESTION, kbchat ask --web QUESTION "
            "or kbchat ask --no-kb QUESTION"
        )
    if not question.strip():
        raise BadInput("the question is empty")  # here too, not only where it is answered
    names = [] if no_kb or kb is None else split_names(kb)
    if server is not None:
        _ask_server(
            server,
            api_key,
            files,
            {
                "question": question,
                "kbs": names,
                "model": model,
                "mode": "agent" if agent else "web" if web else "auto",
                "top_k": top_k,
                "threshold": threshold,
                "no_hit": no_hit,
                "max_tokens": max_tokens,
            },
            as_json=as_json,
        )
        return
    from kbchat.config import load_settings
    from kbchat.options import answer_search_options, chat_options
    from kbchat.shapes.chat import answer_info
    from kbchat.store.conversations import new_conversation_id

    settings = load_settings()
    services = build_services(settings)
    conversation = new_conversation_id()
    try:
        search = answer_search_options(settings, top_k=top_k, threshold=threshold)
        options = chat_options(settings, search, no_hit=no_hit, max_tokens=max_tokens)
        files_kb, some_failed = _attach(services, conversation, files or [], required=True)
        events = _events(
            services, names, question, model, [], options, files_kb=files_kb, agent=agent, web=web
        )
        if as_json:
            answer = next(e for e in events if isinstance(e, Answer))
            print_json(answer_info(answer))
        else:
            print_stream(events)
        if some_failed:  # answered from the files that loaded; the others said why above
            raise typer.Exit(EXIT_FILES_FAILED)
    finally:
        if files:
            services.file_chats().delete(conversation, None)
        services.close()


def _ask_server(
    url: str, api_key: str | None, files: object, request: dict[str, Any], *, as_json: bool
) -> None:
    from kbchat.cli.remote_chat import ask_server, check_local_only
    from kbchat.cli.server_client import ServerClient

    check_local_only(files, "--file")
    client = ServerClient(url, api_key)
    try:
        ask_server(client, request, as_json=as_json)
    finally:
        client.close()


def chat(
    kb: Annotated[str | None, typer.Option(help="Knowledge base(s) to answer from.")] = None,
    model: Annotated[str | None, typer.Option(help="Model name.")] = None,
    server: ServerOpt = None,
    api_key: ApiKeyOpt = None,
) -> None:
    """Interactive chat with history: /kb NAME|off, /file PATH, /agent \\[off], /model NAME, /reset.

    Ctrl-C stops the answer being written, not the session. Attached files are
    deleted when the session ends. With --server, a running `kbchat serve` answers.
    """
    if server is not None:
        from kbchat.cli.remote_chat import chat_with_server
        from kbchat.cli.server_client import ServerClient

        client = ServerClient(server, api_key)
        try:
            chat_with_server(client, split_names(kb) if kb else [], model)
        finally:
            client.close()
        return
    from kbchat.config import load_settings
    from kbchat.store.conversations import new_conversation_id

    settings = load_settings()
    services = build_services(settings)
    state: dict[str, Any] = {
        "kbs": split_names(kb) if kb else [],
        "model": model,
        "conversation": new_conversation_id(),
        "files": None,
        "agent": False,
    }
    history: list[Message] = []
    err.print("kbchat chat — /help for commands, Ctrl-D to leave", markup=False)
    try:
        while (line := read_line(state)) is not None:
            if line.startswith("/"):
                if _command(line, state, history, services):
                    break
                continue
            if line.strip():
                _turn(services, state, line, history, settings)
    finally:
        if state["files"] is not None:
            services.file_chats().delete(state["conversation"], None)
        services.close()


def read_line(state: dict[str, Any]) -> str | None:
    target = ",".join([*state["kbs"], *(["files"] if state["files"] else [])]) or "model"
    if state["agent"]:
        target += "+agent"
    try:
        return input(f"[{target}] > ")
    except EOFError:
        return None
    except KeyboardInterrupt:
        sys.stdout.write("\n")
        return ""


def _command(line: str, state: dict[str, Any], history: list[Message], services: Services) -> bool:
    """Handle a /command; True means leave."""
    word, _, arg = line[1:].partition(" ")
    arg = arg.strip()
    try:
        if word in ("exit", "quit"):
            return True
        if word == "reset":
            history.clear()
            err.print("history cleared")
        elif word == "kb":
            names = [] if arg in ("", "off") else split_names(arg)
            for name in names:
                services.library.get(name)
            state["kbs"] = names
            err.print(f"answering from {', '.join(names) or 'the model alone'}", markup=False)
        elif word == "file":
            if arg:
                files_kb, _ = _attach(
                    services, state["conversation"], [Path(arg).expanduser()], required=False
                )
                state["files"] = files_kb or state["files"]
            attached = state["files"].files() if state["files"] else []
            err.print(
                "attached: "
                + (", ".join(f"{f.name} ({f.status})" for f in attached) or "no file yet"),
                markup=False,
            )
        elif word == "agent":
            state["agent"] = arg != "off"
            err.print(f"agent mode {'on' if state['agent'] else 'off'}", markup=False)
        elif word == "model":
            services.models.get(arg or None)
            state["model"] = arg or None
            err.print(f"model: {arg or services.settings.default_model}", markup=False)
        else:
            err.print(
                "/kb NAME[,NAME]|off   /file PATH   /agent [off]   /model NAME   /reset   /exit",
                markup=False,
            )
    except KbchatError as exc:
        err.print(f"error: {exc}", markup=False, style="red")
    return False


def _turn(
    services: Services,
    state: dict[str, Any],
    question: str,
    history: list[Message],
    settings: Settings,
) -> None:
    from kbchat.options import answer_search_options, chat_options

    cancel = threading.Event()
    options = chat_options(settings, answer_search_options(settings))
    events: Iterator[AgentEvent] | None = None
    try:
        events = _events(
            services,
            state["kbs"],
            question,
            state["model"],
            history,
            options,
            cancel,
            files_kb=state["files"],
            agent=state["agent"],
        )
        answer = print_stream(events)
    except KeyboardInterrupt:
        cancel.set()  # the model stops generating and is free for the next question
        err.print("\n[stopped]", markup=False)
        return
    except KbchatError as exc:
        err.print(f"error: {exc}", markup=False, style="red")
        return
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()
    history.extend([Message("user", question), Message("assistant", answer.text)])
