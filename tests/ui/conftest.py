"""Browser fixtures: Debian Chromium driven by Playwright, fresh pages, an open indexer."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import INDEXING, open_page

HERE = Path(__file__).resolve().parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _ensure_chromium() -> str:
    if not (Path(CHROMIUM).exists() and shutil.which("fc-list")):
        result = subprocess.run(
            ["bash", str(HERE / "install_browser.sh")],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if result.returncode != 0:
            pytest.fail(
                f"could not install Chromium with tests/ui/install_browser.sh:\n"
                f"{result.stdout}\n{result.stderr}"
            )
    return CHROMIUM


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium (install_browser.sh installs it); never downloads a browser."""
    playwright_api = pytest.importorskip("playwright.sync_api", reason="pip install 'kbchat[dev]'")
    executable = _ensure_chromium()
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(autouse=True)
def open_indexer() -> Iterator[None]:
    """The indexer is open again after every test, whatever the test held."""
    yield
    INDEXING.set()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """An English page at 1280x820; fails the test if the page threw an uncaught error."""
    context, new_page, errors = open_page(browser)
    yield new_page
    context.close()
    assert errors == [], f"uncaught errors in the page: {errors}"
