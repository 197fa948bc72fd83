"""One definition per option: the config file, the environment, the CLI and the library agree.

The REST and OpenAI layers are checked against the same table in tests/server/test_options_api.py.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kbchat.chat.rag import ChatOptions
from kbchat.chat.summarize import SummaryOptions
from kbchat.cli.flags import flag
from kbchat.cli.main import main
from kbchat.config import ChatSettings, load_settings
from kbchat.errors import BadInput, ConfigError
from kbchat.kb.library import Library
from kbchat.options import (
    TOP_K_MAX,
    AnswerOptions,
    ChunkOverlap,
    ChunkSize,
    MaxTokens,
    NoHit,
    OptionError,
    RetrievalOptions,
    SearchMode,
    Temperature,
    Threshold,
    TopK,
    answer_search_options,
    bounds,
    chat_options,
    search_options,
)
from kbchat.retrieve.search import SearchOptions


@dataclass(frozen=True)
class Case:
    """An option that several layers set: a value just outside its bounds, and the bound."""

    option: object
    setting: str  # section.key
    outside: object
    edge: object
    refusal: str  # what the refusal says is allowed
    cli: tuple[str, ...] = ()  # the command line before the flag, when there is a flag

    @property
    def key(self) -> str:
        return self.setting.split(".")[1]

    @property
    def env(self) -> str:
        return "KBCHAT_" + self.setting.replace(".", "__").upper()

    @property
    def flag(self) -> str:
        return "--" + self.key.replace("_", "-")


SEARCH = ("kb", "search", "docs", "kettle")
CREATE = ("kb", "create", "more")
ASK = ("ask", "docs", "kettle?", "--model", "nosuch")
CASES = [
    Case(TopK, "retrieval.top_k", 101, 100, "less than or equal to 100", SEARCH),
    Case(TopK, "chat.top_k", 0, 1, "greater than or equal to 1", ASK),
    Case(Threshold, "retrieval.threshold", 1.01, 1.0, "less than or equal to 1", SEARCH),
    Case(SearchMode, "retrieval.mode", "fuzzy", "bm25", "'hybrid', 'dense'", SEARCH),
    Case(NoHit, "chat.no_hit", "shrug", "fallback", "'refuse', 'fallback'", ASK),
    Case(MaxTokens, "chat.max_tokens", 32_769, 32_768, "less than or equal to 32768", ASK),
    Case(Temperature, "chat.temperature", 2.01, 2.0, "less than or equal to 2"),
    Case(ChunkSize, "ingest.chunk_size", 100_001, 100_000, "less than or equal to 100000", CREATE),
    Case(ChunkOverlap, "ingest.chunk_overlap", -1, 0, "greater than or equal to 0", CREATE),
]
IDS = [case.setting for case in CASES]


def toml_value(value: object) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_config_file_holds_the_bounds(case: Case, tmp_path: Path) -> None:
    config = tmp_path / "kbchat.toml"
    section, key = case.setting.split(".")
    config.write_text(f"[{section}]\n{key} = {toml_value(case.outside)}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        load_settings(environ={"KBCHAT_CONFIG": str(config)})
    message = str(refused.value)
    assert f"{case.setting} = {case.outside!r} in {config}" in message
    assert case.refusal in message
    config.write_text(f"[{section}]\n{key} = {toml_value(case.edge)}\n", encoding="utf-8")
    settings = load_settings(environ={"KBCHAT_CONFIG": str(config)})
    assert getattr(getattr(settings, section), key) == case.edge


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_environment_holds_the_bounds(case: Case, tmp_path: Path) -> None:
    home = str(tmp_path)
    with pytest.raises(ConfigError) as refused:
        load_settings(environ={"KBCHAT_HOME": home, case.env: str(case.outside)})
    message = str(refused.value)
    assert message.startswith(f"invalid settings: {case.env} ({case.setting} = ")
    assert case.refusal in message
    settings = load_settings(environ={"KBCHAT_HOME": home, case.env: str(case.edge)})
    section, key = case.setting.split(".")
    assert getattr(getattr(settings, section), key) == case.edge


def run(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = 0
    try:
        main(list(args))
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, " ".join(capsys.readouterr().err.replace("│", " ").split())


@pytest.mark.parametrize(
    "case", [c for c in CASES if c.cli], ids=[c.setting for c in CASES if c.cli]
)
def test_cli_flag_holds_the_bounds(
    case: Case, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KBCHAT_EMBEDDER__BACKEND", "hash")
    assert run("kb", "create", "docs", capsys=capsys)[0] == 0
    code, err = run(*case.cli, case.flag, str(case.outside), capsys=capsys)
    assert code == 2 and f"Invalid value for '{case.flag}'" in err and case.refusal in err, err
    code, err = run(*case.cli, case.flag, str(case.edge), capsys=capsys)
    if case.cli == ASK:  # the options were built; the answer stops at the unknown model
        assert code == 1 and "nosuch" in err, err
    else:
        assert code == 0, err


@pytest.mark.parametrize(
    "case", [c for c in CASES if c.cli], ids=[c.setting for c in CASES if c.cli]
)
def test_cli_flag_range_is_the_options_range(case: Case) -> None:
    allowed = bounds(case.option)
    made = flag(case.option, case.flag)
    assert (made.min, made.max) == (allowed.minimum, allowed.maximum)
    assert made.help.startswith(allowed.description) and allowed.description


def library_options(case: Case, value: object) -> SearchOptions | ChatOptions:
    given: dict[str, Any] = {case.key: value}  # values of any type, on purpose
    if case.setting.startswith("retrieval."):
        return dataclasses.replace(SearchOptions(), **given)
    return dataclasses.replace(ChatOptions(), **given)


LIBRARY = [c for c in CASES if not c.setting.startswith("ingest.")]


@pytest.mark.parametrize("case", LIBRARY, ids=[c.setting for c in LIBRARY])
def test_library_options_hold_the_bounds(case: Case) -> None:
    if case.setting == "chat.top_k":  # an answer's top_k is its search's
        case = dataclasses.replace(case, setting="retrieval.top_k")
    with pytest.raises(OptionError, match=f"^{case.key}: .*{case.refusal}") as refused:
        library_options(case, case.outside)
    assert isinstance(refused.value, BadInput)
    assert getattr(library_options(case, case.edge), case.key) == case.edge


RETRIEVAL = {
    "top_k": 7,
    "mode": "dense",
    "threshold": 0.2,
    "fusion": "rrf",
    "dense_weight": 0.5,
    "second_weight": 0.3,
    "second_weight_cross": 0.4,
    "language_margin": 0.05,
    "candidates": 40,
}
CHAT = {
    "no_hit": "message",
    "no_hit_message": "Ask about kettles.",
    "temperature": 0.5,
    "max_tokens": 300,
    "history_tokens": 200,
    "rewrite": False,
    "verify": False,
    "min_support": 0.2,
    "min_score": 0.3,
    "min_score_cross": 0.1,
    "min_evidence": 0.15,
    "min_coverage": 0.1,
    "context_tokens": 500,
    "source_ratio": 0.5,
    "search_summaries": True,
}


def test_every_setting_reaches_the_options(tmp_path: Path) -> None:
    assert set(RETRIEVAL) == {f.name for f in dataclasses.fields(RetrievalOptions)}
    assert set(CHAT) == {f.name for f in dataclasses.fields(AnswerOptions)}
    defaults = {**dataclasses.asdict(RetrievalOptions()), **dataclasses.asdict(AnswerOptions())}
    assert all(defaults[name] != value for name, value in {**RETRIEVAL, **CHAT}.items())
    settings = load_settings(
        environ={"KBCHAT_HOME": str(tmp_path)},
        retrieval=RETRIEVAL,
        chat={**CHAT, "top_k": 3},
        rerank={"threshold": 0.4},
    )
    search = search_options(settings)
    assert {name: getattr(search, name) for name in RETRIEVAL} == RETRIEVAL
    assert search.rerank_threshold == 0.4
    answer = chat_options(settings, answer_search_options(settings))
    assert {name: getattr(answer, name) for name in CHAT} == CHAT
    assert answer.search.top_k == 3 and answer.search.mode == "dense"


def test_values_given_override_the_settings(tmp_path: Path) -> None:
    settings = load_settings(
        environ={"KBCHAT_HOME": str(tmp_path)}, retrieval={"mode": "dense", "threshold": 0.3}
    )
    search = search_options(
        settings, top_k=9, mode="bm25", files=["k*"], file_types=["md"], pages=(2, 3)
    )
    assert (search.top_k, search.mode, search.threshold) == (9, "bm25", 0.3)
    assert (search.files, search.file_types, search.pages) == (("k*",), ("md",), (2, 3))
    answer = chat_options(
        settings,
        answer_search_options(settings, threshold=0.0),
        no_hit="fallback",
        temperature=0.0,
        max_tokens=64,
        stop=["END"],
        instructions="Be brief.",
    )
    assert (answer.no_hit, answer.temperature, answer.max_tokens) == ("fallback", 0.0, 64)
    assert answer.stop == ("END",) and answer.instructions == "Be brief."
    assert answer.search.threshold == 0.0 and answer.search.top_k == settings.chat.top_k
    with pytest.raises(OptionError, match="top_k: .*less than or equal to 100, got 500"):
        search_options(settings, top_k=500)


def test_library_defaults_are_the_settings_defaults() -> None:
    answering = dataclasses.asdict(ChatOptions())
    configured = dataclasses.asdict(ChatSettings())
    assert {name: answering[name] for name in CHAT} == {name: configured[name] for name in CHAT}
    assert ChatOptions().min_score == 0.45  # it was 0 here while the setting said 0.45
    searching = dataclasses.asdict(SearchOptions())
    assert {name: searching[name] for name in RETRIEVAL} == dataclasses.asdict(RetrievalOptions())


def test_a_knowledge_base_holds_the_chunk_bounds() -> None:
    library = Library(load_settings(embedder={"backend": "hash"}))
    try:
        with pytest.raises(OptionError, match="^chunk_size: .*greater than or equal to 21, got 20"):
            library.create("small", chunk_size=20, chunk_overlap=0)
        with pytest.raises(OptionError, match="^chunk_overlap: .*equal to 0, got -1"):
            library.create("negative", chunk_overlap=-1)
        with pytest.raises(BadInput, match="chunk_overlap must be smaller than chunk_size"):
            library.create("overlapping", chunk_size=100, chunk_overlap=100)
        assert library.create("least", chunk_size=21, chunk_overlap=0).chunk_size == 21
    finally:
        library.close()


def test_the_summary_strategy_flag_is_the_options(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run("summarize", "docs", "--strategy", "best", capsys=capsys)
    assert code == 2 and "'best' is not one of 'auto', 'map-reduce', 'refine', 'extract'" in err
    assert SummaryOptions(strategy="extract").strategy == "extract"
    with pytest.raises(BadInput, match="strategy must be one of auto, map-reduce"):
        SummaryOptions(strategy="best")  # type: ignore[arg-type]


def test_rules_across_fields_are_kept() -> None:
    with pytest.raises(OptionError, match="no_hit 'message' needs no_hit_message"):
        ChatOptions(no_hit="message")
    with pytest.raises(OptionError, match="stop sequences must not be empty"):
        ChatOptions(stop=("",))
    with pytest.raises(OptionError, match="page range"):
        SearchOptions(pages=(5, 2))
    assert SearchOptions(top_k=80, candidates=50).candidates == 80
    with pytest.raises(OptionError, match="files: "):
        SearchOptions(files=["*.md"])  # type: ignore[arg-type]


def test_a_file_put_whole_in_the_prompt_fits_top_k() -> None:
    from kbchat.chat.files import MAX_WHOLE_CHUNKS

    assert MAX_WHOLE_CHUNKS <= TOP_K_MAX  # file_search_options sets top_k to its chunks
