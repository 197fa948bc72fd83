"""Chat with a local GGUF model through the embedded llama.cpp runtime (``xllamacpp``).

One model instance serves ``parallel`` requests at once: llama.cpp's parallel slots with
continuous batching decode all running answers in one batch per step, so 2-4 streams give
more tokens per second together than one alone (measured in bench/results/load.json).
Each slot keeps a full ``n_ctx`` context (the KV cache is sized ``parallel x n_ctx``); a
request beyond ``parallel`` waits for a slot here (the server's queue keeps them out).
The runtime applies the chat template stored in the GGUF and streams OpenAI-style chunks
to a callback on a worker thread; the callback's return value is how generation is stopped.
Prompt-processing progress is requested too, so that a cancel is seen after every small
prompt batch, not only once the first answer token exists.

Structured output is constrained decoding in the runtime: ``response_format`` and
``grammar`` go into the request as they are. Tool calls do not rely on the runtime's own
tool-call parser (Qwen2.5-Coder-0.5B writes calls as bare or fenced JSON, which it does
not recognise): the model's chat template still shows it the tools, and its reply is
constrained to the JSON schema of ``kbchat.llm.tool_calls``, then read back as calls.
"""

from __future__ import annotations

import queue
import secrets
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import httpx

from kbchat.errors import (
    BackendError,
    BadInput,
    ConfigError,
    ContextLengthExceeded,
    MissingDependency,
)
from kbchat.llm.assemble import DEFAULT_MODEL, GGUF_MAGIC, ensure_model
from kbchat.llm.base import (
    CAN_GRAMMAR,
    CAN_RESPONSE_FORMAT,
    CAN_TOOLS,
    FINISH_CANCELLED,
    FINISH_LENGTH,
    FINISH_STOP,
    FINISH_TOOL_CALLS,
    ResponseFormat,
    ToolChoice,
    check_params,
    check_structured,
    estimate_prompt_tokens,
)
from kbchat.llm.tool_calls import answer_hint, read_reply, reply_schema
from kbchat.llm.wire import ChunkReader, message_dict, response_format_dict, tool_dict
from kbchat.types import Delta, Message, ToolSpec, Usage

# Prompt tokens evaluated per step: a cancel waits at most one step (~0.6 s at 100 tok/s);
# measured on 2 cores, steps of 64 are as fast as 512 for the 0.5B model.
_PROMPT_BATCH = 64
_POLL_S = 0.05
_LOG_ERRORS_ONLY = 1
_PROMPT_CACHE_MIB = 512
_END = object()
_DEFAULT_SYSTEM = "You are a helpful assistant."


class LlamaCppChatModel:
    """A GGUF chat model run in-process by llama.cpp.

    Args:
        path: The GGUF file; default: the embedded model assembled in ``models_dir``.
        n_ctx: Context window in tokens (prompt and answer together).
        threads: CPU threads; default: llama.cpp's choice (the physical cores).
        models_dir: Where the embedded model is assembled when ``path`` is None.
        name: The name clients use; default: the file's stem.
        model: Which embedded model to assemble when ``path`` is None (a key of
            ``kbchat.llm.assemble.KNOWN_MODELS``); default: the 0.5B one.
        parallel: Requests generated at once (llama.cpp parallel slots).

    Raises:
        ConfigError: the model file is missing, not a GGUF file, or fails to load.
        MissingDependency: xllamacpp (``kbchat[local]``) is not installed.
    """

    capabilities = frozenset({CAN_RESPONSE_FORMAT, CAN_GRAMMAR, CAN_TOOLS})

    def __init__(
        self,
        *,
        path: Path | None = None,
        n_ctx: int = 4096,
        threads: int | None = None,
        models_dir: Path | None = None,
        name: str | None = None,
        model: str | None = None,
        parallel: int = 1,
        **_: object,
    ) -> None:
        if n_ctx <= 0:
            raise ValueError(f"n_ctx must be > 0, got {n_ctx}")
        if parallel <= 0:
            raise ValueError(f"parallel must be > 0, got {parallel}")
        if threads is not None and threads <= 0:
            raise ValueError(f"threads must be > 0, got {threads}")
        self.path = _resolve_model_path(path, models_dir, model or DEFAULT_MODEL)
        self.name = name or self.path.stem
        self.context_window = n_ctx
        self.parallel = parallel
        self._slots = threading.BoundedSemaphore(parallel)
        api_key = secrets.token_urlsafe(24)
        self._server: Any = _start_runtime(self.path, n_ctx, threads, api_key, parallel)
        # The runtime also listens on a random loopback port (it always does); it is used
        # only to tokenize, and the random key keeps other local users out of it.
        self._http = httpx.Client(
            base_url=self._server.listening_address,
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=30.0,
        )
        self.last_timings: dict[str, float] = {}

    def count_tokens(self, text: str) -> int:
        """Exact number of tokens ``text`` takes in this model's vocabulary."""
        if not text:
            return 0
        try:
            response = self._http.post("/tokenize", json={"content": text})
            response.raise_for_status()
            return len(response.json()["tokens"])
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            raise BackendError(f"llama.cpp could not tokenize with {self.path}: {exc}") from exc

    def stream(
        self,
        messages: Sequence[Message],
        *,
        temperature: float = 0.2,
        max_tokens: int = 512,
        stop: Sequence[str] = (),
        cancel: threading.Event | None = None,
        response_format: ResponseFormat | None = None,
        grammar: str | None = None,
        tools: Sequence[ToolSpec] = (),
        tool_choice: ToolChoice = "auto",
        parallel_tool_calls: bool = True,
    ) -> Iterator[Delta]:
        """Stream the answer; see ``kbchat.llm.base.ChatModel.stream``.

        With tools (and tool_choice not "none") the reply is read whole before it is
        given out: one delta with the answer text or the tool calls.
        """
        check_params(temperature, max_tokens, stop)
        if not messages:
            raise BadInput("messages must not be empty")
        check_structured(
            self.name,
            self.capabilities,
            response_format=response_format,
            grammar=grammar,
            tools=tools,
            tool_choice=tool_choice,
        )
        calling = bool(tools) and tool_choice != "none"
        if calling and response_format is not None and response_format.type != "text":
            raise BadInput(f"model {self.name} cannot combine tools with a JSON response_format")
        request: dict[str, Any] = {
            "messages": [message_dict(m) for m in messages],
            "stream": True,
            "stream_options": {"include_usage": True},
            "return_progress": True,
            "temperature": temperature,
            "max_tokens": max_tokens,
            "stop": list(stop),
        }
        if response_format is not None and response_format.type != "text":
            request["response_format"] = response_format_dict(response_format)
        if grammar is not None:
            request["grammar"] = grammar
        if not calling:
            return self._generate(request, messages, cancel)
        if tool_choice == "auto":
            request["messages"] = _with_system_hint(request["messages"], answer_hint(tool_choice))
        request["tools"] = [tool_dict(tool) for tool in tools]
        request["json_schema"] = reply_schema(tools, tool_choice, parallel_tool_calls)
        return _as_tool_calls(self._generate(request, messages, cancel), tools, max_tokens)

    def close(self) -> None:
        """Free the model once the running requests (if any) have finished."""
        for _ in range(self.parallel):
            self._slots.acquire()
        try:
            self._http.close()
            self._server = None
        finally:
            for _ in range(self.parallel):
                self._slots.release()

    def _generate(
        self, request: dict[str, Any], messages: Sequence[Message], cancel: threading.Event | None
    ) -> Iterator[Delta]:
        if not self._acquire(cancel):
            yield Delta(finish_reason=FINISH_CANCELLED, usage=Usage())
            return
        if self._server is None:
            self._slots.release()
            raise BackendError(f"chat model {self.name} ({self.path}) is closed")
        chunks: queue.SimpleQueue[object] = queue.SimpleQueue()
        abandon = threading.Event()
        worker = threading.Thread(
            target=self._run, args=(request, chunks, abandon, cancel), name="kbchat-llamacpp"
        )
        try:
            worker.start()
        except RuntimeError:
            self._slots.release()
            raise
        reader = ChunkReader(self._runtime_error)
        try:
            while (item := _next_item(chunks, cancel)) is not _END:
                if item is None:
                    yield Delta(finish_reason=FINISH_CANCELLED, usage=reader.usage_so_far())
                    return
                if isinstance(item, Exception):
                    raise item
                if text := reader.feed(cast(dict[str, Any], item)):
                    yield Delta(text=text)
        finally:
            abandon.set()
        self.last_timings = reader.timings
        usage = reader.usage or Usage(
            estimate_prompt_tokens(self, messages), reader.completion_tokens
        )
        yield Delta(finish_reason=reader.finish_reason or FINISH_STOP, usage=usage)

    def _runtime_error(self, error: object) -> Exception:
        message = error.get("message", error) if isinstance(error, dict) else error
        if isinstance(error, dict) and error.get("type") == "exceed_context_size_error":
            return ContextLengthExceeded(
                f"the prompt takes {error.get('n_prompt_tokens', 'more')} tokens, more than "
                f"the {self.context_window}-token context of model {self.name}; shorten the "
                f"messages"
            )
        if isinstance(error, dict) and error.get("code") == 400:
            return BadInput(f"chat model {self.name}: {message}")
        return BackendError(f"llama.cpp failed running {self.path}: {message}")

    def _acquire(self, cancel: threading.Event | None) -> bool:
        """Wait for a free slot; False if cancelled while waiting."""
        while not self._slots.acquire(timeout=_POLL_S):
            if cancel is not None and cancel.is_set():
                return False
        return True

    def _run(
        self,
        request: dict[str, Any],
        chunks: queue.SimpleQueue[object],
        abandon: threading.Event,
        cancel: threading.Event | None,
    ) -> None:
        """Worker thread: run one request; the slot taken by the caller is released here."""

        def on_chunk(chunk: dict[str, Any]) -> bool:
            chunks.put(chunk)
            return abandon.is_set() or (cancel is not None and cancel.is_set())

        try:
            self._server.handle_chat_completions(request, on_chunk)
        except ValueError as exc:  # the runtime's word for a request it refuses
            chunks.put(BadInput(f"chat model {self.name}: {exc}"))
        except Exception as exc:  # the runtime raises plain exceptions; hand them over
            chunks.put(BackendError(f"llama.cpp failed running {self.path}: {exc}"))
        finally:
            chunks.put(_END)
            self._slots.release()


def _as_tool_calls(
    deltas: Iterator[Delta], tools: Sequence[ToolSpec], max_tokens: int
) -> Iterator[Delta]:
    """Read a reply written under ``tool_calls.reply_schema`` whole; give out text or calls."""
    parts: list[str] = []
    for delta in deltas:
        parts.append(delta.text)
        if delta.finish_reason is None:
            continue
        if delta.finish_reason == FINISH_CANCELLED:
            yield delta
            return
        if delta.finish_reason == FINISH_LENGTH:
            raise BadInput(
                f"max_tokens={max_tokens} ran out before the tool call was complete; "
                f"raise max_tokens"
            )
        answer, calls = read_reply("".join(parts), tools)
        if calls:
            yield Delta(tool_calls=calls)
            yield Delta(finish_reason=FINISH_TOOL_CALLS, usage=delta.usage)
        else:
            yield Delta(text=answer)
            yield Delta(finish_reason=delta.finish_reason, usage=delta.usage)
        return


def _with_system_hint(messages: list[dict[str, Any]], hint: str) -> list[dict[str, Any]]:
    """``messages`` with ``hint`` added to the system prompt (one made if there is none)."""
    if messages and messages[0]["role"] == "system":
        first = dict(messages[0], content=f"{messages[0]['content']}\n\n{hint}")
        return [first, *messages[1:]]
    return [{"role": "system", "content": f"{_DEFAULT_SYSTEM}\n\n{hint}"}, *messages]


def _next_item(chunks: queue.SimpleQueue[object], cancel: threading.Event | None) -> object:
    """The next chunk, error or _END from the worker; None once ``cancel`` is set."""
    while True:
        if cancel is not None and cancel.is_set():
            return None
        try:
            return chunks.get(timeout=_POLL_S)
        except queue.Empty:
            continue


def _resolve_model_path(path: Path | None, models_dir: Path | None, embedded: str) -> Path:
    if path is None:
        if models_dir is None:
            raise ConfigError(
                "the llamacpp chat model needs a GGUF path (models.<name>.path) or a "
                "model cache to assemble the embedded model in (model_cache)"
            )
        return ensure_model(embedded, Path(models_dir))
    path = Path(path).expanduser()
    fix = "set models.<name>.path to a GGUF chat model, or unset it to use the embedded one"
    if not path.is_file():
        raise ConfigError(f"chat model file {path} does not exist; {fix}")
    with path.open("rb") as f:
        if f.read(len(GGUF_MAGIC)) != GGUF_MAGIC:
            raise ConfigError(f"chat model file {path} is not a GGUF file; {fix}")
    return path


def _start_runtime(path: Path, n_ctx: int, threads: int | None, api_key: str, parallel: int) -> Any:
    try:
        import xllamacpp
    except ImportError:
        raise MissingDependency("xllamacpp", "local", "the embedded llama.cpp chat model") from None
    params = xllamacpp.CommonParams()
    params.model.path = str(path)
    # One KV cache for all slots, each slot capped at n_ctx: every request keeps the
    # whole context window however many run beside it.
    params.n_ctx = n_ctx * parallel
    params.n_parallel = parallel
    params.kv_unified = True
    params.kv_unified_per_slot = n_ctx
    params.n_batch = params.n_ubatch = _PROMPT_BATCH
    if threads is not None:
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
    params.hostnames = ["127.0.0.1"]
    params.port = 0
    params.api_keys = [api_key]
    params.n_threads_http = 2
    params.ui = False
    params.offline = True
    params.verbosity = _LOG_ERRORS_ONLY
    params.cache_ram_mib = _PROMPT_CACHE_MIB
    try:
        return xllamacpp.Server(params)
    except (RuntimeError, ValueError) as exc:
        raise ConfigError(
            f"llama.cpp could not load the chat model {path} ({exc}); the file may be "
            f"truncated or corrupt, or n_ctx={n_ctx} too large for memory. Fix: delete "
            f"it to re-assemble the embedded model, or point models.<name>.path at a "
            f"valid GGUF chat model"
        ) from exc
