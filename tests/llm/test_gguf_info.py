"""The GGUF header reader: facts without loading, the memory estimate, and bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from kbchat.errors import ConfigError
from kbchat.llm.gguf_info import RUNTIME_OVERHEAD, read_gguf_info
from tests.llm.tiny_gguf import write_tiny_gguf


def test_header_facts(tmp_path: Path) -> None:
    info = read_gguf_info(write_tiny_gguf(tmp_path / "tiny.gguf"))
    assert info.architecture == "llama" and info.name == "Tiny Test"
    assert info.quantisation == "Q4_K_M" and info.size_label == "1K"
    assert info.context_length == 2048 and info.layers == 2
    assert (info.kv_heads, info.head_dim) == (2, 16)
    assert info.parameters == 8 * 64 + 64
    assert info.file_bytes == (tmp_path / "tiny.gguf").stat().st_size


def test_memory_estimate_counts_the_kv_cache_per_slot(tmp_path: Path) -> None:
    info = read_gguf_info(write_tiny_gguf(tmp_path / "tiny.gguf"))
    per_token = 2 * 2 * 2 * 16 * 2  # K and V, layers, KV heads, head dim, f16 bytes
    assert info.memory_bytes(1000, 1) == info.file_bytes + 1000 * per_token + RUNTIME_OVERHEAD
    assert info.memory_bytes(1000, 4) - info.memory_bytes(1000, 1) == 3 * 1000 * per_token


def test_not_gguf_and_truncated_files_are_named(tmp_path: Path) -> None:
    text = tmp_path / "notes.gguf"
    text.write_text("hello", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"notes.gguf is not a GGUF model file"):
        read_gguf_info(text)
    whole = write_tiny_gguf(tmp_path / "whole.gguf").read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(whole[:60])
    with pytest.raises(ConfigError, match=r"cut.gguf is a truncated GGUF file"):
        read_gguf_info(cut)
    with pytest.raises(ConfigError, match="does not exist"):
        read_gguf_info(tmp_path / "gone.gguf")
