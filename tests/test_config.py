"""Settings: layered from defaults, kbchat.toml, the environment given and overrides; checked
at start-up with one line that names the key as the user wrote it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kbchat.cli.main import main
from kbchat.config import load_settings
from kbchat.errors import ConfigError


def test_the_environment_is_given_not_read_from_os_environ(tmp_path: Path) -> None:
    home = tmp_path / "elsewhere"
    home.mkdir()
    (home / "kbchat.toml").write_text('[retrieval]\nmode = "dense"\n', encoding="utf-8")
    settings = load_settings(environ={"KBCHAT_HOME": str(home), "KBCHAT_CHAT__TOP_K": "3"})
    assert settings.home == home and settings.chat.top_k == 3
    assert settings.retrieval.mode == "dense"  # the file of the home given
    assert os.environ["KBCHAT_HOME"] != str(home)  # conftest's home was not read


def test_layers_file_then_environment_then_overrides(tmp_path: Path) -> None:
    config = tmp_path / "kbchat.toml"
    config.write_text(
        '[retrieval]\nmode = "dense"\nthreshold = 0.3\n[chat]\ntop_k = 4\n', encoding="utf-8"
    )
    environ = {"KBCHAT_CONFIG": str(config), "KBCHAT_RETRIEVAL__MODE": "bm25"}
    settings = load_settings(environ=environ, retrieval={"threshold": 0.2})
    assert (settings.retrieval.mode, settings.retrieval.threshold) == ("bm25", 0.2)
    assert settings.chat.top_k == 4 and settings.retrieval.fusion == "weighted"


def test_a_bad_value_is_named_as_written_with_the_allowed_values(tmp_path: Path) -> None:
    environ = {"KBCHAT_HOME": str(tmp_path), "KBCHAT_RETRIEVAL__MODE": "foo"}
    with pytest.raises(ConfigError) as refused:
        load_settings(environ=environ)
    assert str(refused.value) == (
        "invalid settings: KBCHAT_RETRIEVAL__MODE (retrieval.mode = 'foo'): "
        "input should be 'hybrid', 'dense' or 'bm25'"
    )
    config = tmp_path / "kbchat.toml"
    config.write_text("[chat]\ntop_k = 500\nno_hit = 'never'\n", encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        load_settings(environ={"KBCHAT_HOME": str(tmp_path)})
    assert str(refused.value) == (
        f"invalid settings: chat.no_hit = 'never' in {config}: input should be 'refuse', "
        f"'fallback' or 'message'; chat.top_k = 500 in {config}: input should be less than or "
        "equal to 100"
    )


def test_a_whole_section_in_json_is_named_by_its_variable(tmp_path: Path) -> None:
    environ = {"KBCHAT_HOME": str(tmp_path), "KBCHAT_RETRIEVAL": '{"fusion": "max"}'}
    with pytest.raises(ConfigError, match=r"KBCHAT_RETRIEVAL \(retrieval\.fusion = 'max'\)"):
        load_settings(environ=environ)


def test_an_unknown_key_lists_the_known_ones(tmp_path: Path) -> None:
    environ = {"KBCHAT_HOME": str(tmp_path), "KBCHAT_RETRIEVAL__MODES": "dense"}
    with pytest.raises(ConfigError) as refused:
        load_settings(environ=environ)
    message = str(refused.value)
    assert (
        "KBCHAT_RETRIEVAL__MODES (unknown setting retrieval.modes): known: top_k, mode," in message
    )
    (tmp_path / "kbchat.toml").write_text("[retrival]\nmode = 'dense'\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"unknown setting retrival in .*known: home, embedder"):
        load_settings(environ={"KBCHAT_HOME": str(tmp_path)})


def test_rules_across_settings_are_checked_at_start_up(tmp_path: Path) -> None:
    environ = {"KBCHAT_HOME": str(tmp_path), "KBCHAT_CHAT__NO_HIT": "message"}
    with pytest.raises(ConfigError, match="chat: no_hit 'message' needs no_hit_message"):
        load_settings(environ=environ)
    environ["KBCHAT_CHAT__NO_HIT_MESSAGE"] = "Ask about kettles."
    assert load_settings(environ=environ).chat.no_hit_message == "Ask about kettles."


def test_an_unreadable_config_file_is_named(tmp_path: Path) -> None:
    config = tmp_path / "kbchat.toml"
    config.write_text("[chat\ntop_k = 3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"{config} is not valid TOML: .*line 1"):
        load_settings(environ={"KBCHAT_CONFIG": str(config)})
    with pytest.raises(ConfigError, match="KBCHAT_CONFIG points at .*missing.toml"):
        load_settings(environ={"KBCHAT_CONFIG": str(tmp_path / "missing.toml")})


def test_overrides_are_checked_too(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^invalid settings: server\.port = 70000: .*65535"):
        load_settings(environ={"KBCHAT_HOME": str(tmp_path)}, server={"port": 70_000})


@pytest.mark.parametrize("command", [["kb", "list"], ["serve", "--no-sample"]])
def test_the_cli_prints_one_line_and_no_traceback(
    command: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from kbchat.server.shutdown import GracefulServer

    monkeypatch.setattr(GracefulServer, "run", lambda *_, **__: pytest.fail("served a bad config"))
    monkeypatch.setenv("KBCHAT_RETRIEVAL__MODE", "foo")  # the CLI reads os.environ
    monkeypatch.setenv("KBCHAT_CHAT__TOP_K", "500")
    with pytest.raises(SystemExit) as exited:
        main(command)
    assert exited.value.code == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "Traceback" not in captured.err
    assert captured.err.count("\n") == 1
    assert captured.err.startswith("error: invalid settings: KBCHAT_RETRIEVAL__MODE")
    assert "KBCHAT_CHAT__TOP_K (chat.top_k = '500'): input should be less than" in captured.err
