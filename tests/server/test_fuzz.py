"""Generated requests (schemathesis, from our own OpenAPI schema): no 5xx, and every check holds.

The second test runs the command users run, `schemathesis run --checks all`, against the app over
a loopback socket, with the repository's schemathesis.toml: every documented status, header, body
and `Allow` list must match what the server does.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from kbchat.server import create_app
from kbchat.testing.fakes import ScriptedChatModel
from tests.server.support import DOCS, live_server, make_services, make_settings

schemathesis = pytest.importorskip("schemathesis")

EXAMPLES = 40
CLI_EXAMPLES = 15
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def no_model_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    """Generated model pulls go to a port where nothing listens, never to a real hub."""
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:1")
    monkeypatch.setenv("MODELSCOPE_ENDPOINT", "http://127.0.0.1:1")


def aim_at_existing_things(case: Any) -> None:
    """Point a generated request at the KB and model that exist, so it reaches deeper code."""
    if case.path_parameters and "name" in case.path_parameters and case.method != "DELETE":
        case.path_parameters["name"] = "docs"
    if isinstance(case.body, dict):
        if "kbs" in case.body:
            case.body["kbs"] = ["docs"]
        if case.operation.path == "/v1/chat/completions":
            odd = len(str(case.body.get("model"))) % 2
            case.body["model"] = "kb:docs" if odd else "qwen2.5-0.5b"
        elif "model" in case.body:
            case.body["model"] = "docs" if "embeddings" in case.operation.path else None


def _services_with_docs() -> tuple[Any, Any]:
    settings = make_settings()
    services = make_services(settings, ScriptedChatModel(["The kettle warranty is two years [1]."]))
    folder = settings.home / "seed"
    folder.mkdir(parents=True)
    for name, data in DOCS.items():
        (folder / name).write_bytes(data)
    services.library.create("docs")
    services.library.get("docs").add([folder])
    return settings, services


@pytest.mark.slow
def test_generated_requests_never_get_a_server_error() -> None:
    settings, services = _services_with_docs()
    schema = schemathesis.openapi.from_asgi(
        "/openapi.json", create_app(settings, services=services)
    )
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20

    for operation in operations:

        @hypothesis_settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(), known=st.booleans())
        def check(case: Any, known: bool) -> None:
            if known:
                aim_at_existing_things(case)
            response = case.call()
            label = f"{case.method} {case.formatted_path}"
            if response.status_code >= 500:
                failures.append(f"{label}: {response.status_code} {response.text[:300]}")
            elif response.status_code >= 400:
                body = json.loads(response.text)
                assert "message" in body["error"], f"{label}: {response.text[:300]}"

        check()
    services.close()
    assert not failures, "\n".join(failures[:20])


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.timeout(1800)  # ~1 minute on an idle 2-core machine; far longer on a loaded one
def test_schemathesis_run_with_all_checks_is_clean() -> None:
    settings, services = _services_with_docs()
    command = [
        sys.executable,
        "-c",
        "import sys; from schemathesis.cli import schemathesis; sys.exit(schemathesis())",
        "--config-file",
        str(ROOT / "schemathesis.toml"),
        "run",
        "--checks",
        "all",
        "--max-examples",
        str(CLI_EXAMPLES),
        "--seed",
        "20261130",
        "--no-color",
    ]
    try:
        with live_server(create_app(settings, services=services)) as url:
            result = subprocess.run(
                [*command, f"{url}/openapi.json"],
                capture_output=True,
                text=True,
                timeout=1700,
                check=False,
            )
    finally:
        services.close()
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "failures" not in result.stdout.lower()
