"""The command line starts without the heavy stack: numpy, FAISS and FastAPI load where used,
and a command imports its own module only (``kbchat.cli.lazy``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("numpy", "faiss", "fastapi")


def _loaded_after(code: str, home: Path) -> list[str]:
    """The HEAVY modules present in sys.modules after running ``code`` in a fresh interpreter."""
    probe = (
        f"{code}\nimport json, sys\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KBCHAT_HOME": str(home)}
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    )
    loaded: list[str] = json.loads(done.stdout.splitlines()[-1])
    return loaded


def test_importing_the_cli_loads_no_heavy_module(tmp_path: Path) -> None:
    assert _loaded_after("import kbchat.cli.main", tmp_path) == []


def test_listing_knowledge_bases_loads_no_heavy_module(tmp_path: Path) -> None:
    code = "from kbchat.cli.main import app\napp(['kb', 'list', '--json'], standalone_mode=False)"
    assert _loaded_after(code, tmp_path) == []


def test_the_probe_sees_a_heavy_import(tmp_path: Path) -> None:
    assert _loaded_after("import kbchat.store.base", tmp_path) == ["numpy"]


COMMAND_MODULES = {
    f"kbchat.cli.{name}"
    for name in ("kb", "chat", "doctor", "eval", "feedback", "keys", "models", "serve", "summarize")
} | {"kbchat.cli.remote_chat", "kbchat.cli.server_client"}
STACK = {"numpy", "faiss", "fastapi", "httpx", "uvicorn", "sqlalchemy", "pydantic_settings"}


def _run_main(*args: str, home: Path, **env: str) -> tuple[int, str, set[str]]:
    """Exit code, stdout and the imported modules of ``kbchat ARGS`` in a fresh interpreter,
    without the test plugin (it is not what a user's command imports)."""
    probe = (
        "import json, sys\n"
        "from kbchat.cli.main import main\n"
        "code = 0\n"
        "try:\n"
        f"    main({list(args)!r})\n"
        "except SystemExit as exc:\n"
        "    code = exc.code or 0\n"
        "sys.stdout.flush()\n"
        "print('\\n' + json.dumps([code, sorted(sys.modules)]))\n"
    )
    environ = {k: v for k, v in os.environ.items() if k != "KBCHAT_PLUGINS"}
    environ |= {"PYTHONPATH": str(ROOT), "KBCHAT_HOME": str(home), "COLUMNS": "200", **env}
    done = subprocess.run(
        [sys.executable, "-c", probe], env=environ, capture_output=True, text=True, check=True
    )
    output, _, last = done.stdout.rstrip("\n").rpartition("\n")
    code, modules = json.loads(last)
    return int(code), output, set(modules)


def test_help_imports_no_command_module_and_no_stack(tmp_path: Path) -> None:
    code, out, modules = _run_main("--help", home=tmp_path)
    assert code == 0 and "Usage: kbchat [OPTIONS] COMMAND [ARGS]..." in out
    assert modules & (COMMAND_MODULES | STACK | {"kbchat.config"}) == set()


def test_kb_list_imports_its_own_command_module_only(tmp_path: Path) -> None:
    code, out, modules = _run_main("kb", "list", "--json", home=tmp_path)
    assert code == 0 and json.loads(out) == []
    assert {"kbchat.cli.kb", "sqlalchemy"} <= modules  # the probe sees what ran
    assert modules & COMMAND_MODULES == {"kbchat.cli.kb"}
    assert modules & STACK == {"sqlalchemy", "pydantic_settings"}  # the catalog, the settings


def test_a_mistyped_command_is_named_without_importing_any(tmp_path: Path) -> None:
    code, _, modules = _run_main("kbb", home=tmp_path)
    assert code == 2
    assert modules & COMMAND_MODULES == set()
    done = _kbchat("kbb", home=tmp_path)
    assert "No such command 'kbb'. Did you mean 'kb'?" in done.stderr


def test_completing_a_command_name_imports_no_command_module(tmp_path: Path) -> None:
    complete = {"_KBCHAT_COMPLETE": "complete_zsh", "_TYPER_COMPLETE_ARGS": "kbchat "}
    code, out, modules = _run_main(home=tmp_path, **complete)
    assert code == 0
    assert '"kb":"Create and manage knowledge bases."' in out
    assert '"serve":"Serve the web UI, the REST API and the..."' in out
    assert modules & COMMAND_MODULES == set()
    code, out, modules = _run_main(
        home=tmp_path, _KBCHAT_COMPLETE="complete_zsh", _TYPER_COMPLETE_ARGS="kbchat kb "
    )
    assert code == 0 and '"list":"List knowledge bases."' in out
    assert modules & COMMAND_MODULES == {"kbchat.cli.kb"}


def _kbchat(*args: str, home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "PYTHONPATH": str(ROOT), "KBCHAT_HOME": str(home), **env}
    return subprocess.run(
        [sys.executable, "-m", "kbchat", *args], env=environ, capture_output=True, text=True
    )


def test_a_bad_log_level_names_the_flag_and_the_variable(tmp_path: Path) -> None:
    by_flag = _kbchat("--log-level", "LOUD", "kb", "list", home=tmp_path)
    by_env = _kbchat("kb", "list", home=tmp_path, KBCHAT_LOG_LEVEL="LOUD")
    for done in (by_flag, by_env):
        assert done.returncode == 1
        assert "--log-level, KBCHAT_LOG_LEVEL" in done.stderr and "'LOUD'" in done.stderr


def test_a_bad_log_format_is_refused(tmp_path: Path) -> None:
    done = _kbchat("kb", "list", home=tmp_path, KBCHAT_LOG_FORMAT="xml")
    assert done.returncode == 1 and "KBCHAT_LOG_FORMAT" in done.stderr
