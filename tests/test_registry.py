"""The registries: production holds no test fakes; plugins add backends, errors name the setting."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kbchat.errors import ConfigError
from kbchat.registry import load_plugins

REPO = Path(__file__).resolve().parents[1]

LIST_BACKENDS = """
import json
from kbchat.config import load_settings
from kbchat.registry import chat_models, embedders, load_plugins, vector_stores
before = {"embedders": embedders.names(), "chat": chat_models.names()}
load_plugins(load_settings().plugins)
after = {"embedders": embedders.names(), "chat": chat_models.names()}
print(json.dumps({"before": before, "after": after, "stores": vector_stores.names()}))
"""


def backends_in_child(plugins: str | None) -> dict[str, dict[str, list[str]]]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("KBCHAT_PLUGINS", None)
    if plugins is not None:
        env["KBCHAT_PLUGINS"] = plugins
    result = subprocess.run(
        [sys.executable, "-c", LIST_BACKENDS],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    found: dict[str, dict[str, list[str]]] = json.loads(result.stdout)
    return found


def test_production_registries_hold_no_test_fakes() -> None:
    found = backends_in_child(None)
    assert (
        found["before"]
        == found["after"]
        == {
            "embedders": ["e5", "openai", "use"],
            "chat": ["llamacpp", "openai"],
        }
    )
    assert "faiss" in found["stores"]


def test_a_plugin_named_in_the_setting_registers_its_backends() -> None:
    found = backends_in_child("kbchat.testing.plugin")
    assert "hash" in found["after"]["embedders"] and "scripted" in found["after"]["chat"]
    assert "hash" not in found["before"]["embedders"]


def test_a_bad_plugin_is_a_config_error_naming_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="setting plugins: cannot import module 'no_such_mod"):
        load_plugins(["no_such_module_here"])
    with pytest.raises(ConfigError, match="setting plugins: module 'json' has no register"):
        load_plugins(["json"])
