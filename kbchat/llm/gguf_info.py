"""What a GGUF chat model is, read from its header without loading it, and the memory it needs.

The header is read as a stream: ``gguf.GGUFReader`` maps the whole file and parses every
vocabulary entry into arrays, which took 51 s wall for the 0.5B model here (151k tokens,
load 12); this reader seeks past them: 0.3 s CPU, 2.3 s wall at load 15. The ``gguf``
package gives the quantisation names.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from kbchat.errors import ConfigError

MAGIC = b"GGUF"
KV_BYTES_PER_VALUE = 2
"""llama.cpp keeps the KV cache in f16 by default."""
RUNTIME_OVERHEAD = 300 * 2**20
"""Compute buffers, prompt batch and runtime: an allowance in bytes, not a measurement of
every model (llama.cpp's own log gives ~150-300 MiB of compute buffers for 0.5-1.5B models
at a 512-token batch)."""

_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?"}
_SCALARS.update({10: "<Q", 11: "<q", 12: "<d"})
_STRING, _ARRAY = 8, 9


@dataclass(frozen=True, slots=True)
class GgufInfo:
    """A GGUF model's facts, from its header."""

    path: Path
    file_bytes: int
    architecture: str
    name: str | None
    size_label: str | None
    quantisation: str | None
    context_length: int | None
    layers: int | None
    kv_heads: int | None
    head_dim: int | None
    parameters: int

    def memory_bytes(self, n_ctx: int, parallel: int = 1) -> int:
        """Estimated resident memory when serving: weights + f16 KV cache for ``n_ctx``
        tokens in each of ``parallel`` slots + ``RUNTIME_OVERHEAD``."""
        kv = 0
        if self.layers and self.kv_heads and self.head_dim:
            per_token = 2 * self.layers * self.kv_heads * self.head_dim * KV_BYTES_PER_VALUE
            kv = per_token * n_ctx * parallel
        return self.file_bytes + kv + RUNTIME_OVERHEAD


def read_gguf_info(path: Path) -> GgufInfo:
    """Read ``path``'s GGUF header.

    Raises:
        ConfigError: the file is missing, not GGUF, or its header is cut short.
    """
    path = Path(path).expanduser()
    try:
        with path.open("rb") as stream:
            if stream.read(4) != MAGIC:
                raise ConfigError(f"{path} is not a GGUF model file (no GGUF magic)")
            values, parameters = _read_header(stream)
    except FileNotFoundError:
        raise ConfigError(f"model file {path} does not exist") from None
    except struct.error:
        raise ConfigError(f"{path} is a truncated GGUF file (its header is cut short)") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    arch = str(values.get("general.architecture", "unknown"))
    heads = _int(values.get(f"{arch}.attention.head_count"))
    width = _int(values.get(f"{arch}.embedding_length"))
    head_dim = _int(values.get(f"{arch}.attention.key_length")) or (
        width // heads if width and heads else None
    )
    return GgufInfo(
        path=path,
        file_bytes=path.stat().st_size,
        architecture=arch,
        name=_str(values.get("general.name")),
        size_label=_str(values.get("general.size_label")),
        quantisation=_quantisation(values.get("general.file_type")),
        context_length=_int(values.get(f"{arch}.context_length")),
        layers=_int(values.get(f"{arch}.block_count")),
        kv_heads=_int(values.get(f"{arch}.attention.head_count_kv")) or heads,
        head_dim=head_dim,
        parameters=parameters,
    )


def _read_header(stream: BinaryIO) -> tuple[dict[str, Any], int]:
    """The key-value pairs (arrays skipped) and the parameter count of the tensors."""
    (version,) = _unpack(stream, "<I")
    if version < 2:
        raise ConfigError(f"GGUF version {version} is too old (kbchat reads 2 and later)")
    tensors, pairs = _unpack(stream, "<QQ")
    values: dict[str, Any] = {}
    for _ in range(pairs):
        key = _string(stream)
        (kind,) = _unpack(stream, "<I")
        values[key] = _value(stream, kind)
    parameters = 0
    for _ in range(tensors):
        _skip_string(stream)
        (dims,) = _unpack(stream, "<I")
        shape = _unpack(stream, f"<{dims}Q")
        stream.seek(4 + 8, 1)  # tensor type, data offset
        parameters += math.prod(shape)
    return values, parameters


def _value(stream: BinaryIO, kind: int) -> Any:
    if kind == _STRING:
        return _string(stream)
    if kind == _ARRAY:
        item, count = _unpack(stream, "<IQ")
        if item == _STRING:
            for _ in range(count):
                _skip_string(stream)
        elif item in _SCALARS:
            stream.seek(struct.calcsize(_SCALARS[item]) * count, 1)
        else:
            for _ in range(count):
                _value(stream, item)
        return None  # arrays (vocabulary, merges) are not needed
    if kind not in _SCALARS:
        raise ConfigError(f"unknown GGUF value type {kind} in {getattr(stream, 'name', '?')}")
    return _unpack(stream, _SCALARS[kind])[0]


def _unpack(stream: BinaryIO, layout: str) -> tuple[Any, ...]:
    return struct.unpack(layout, stream.read(struct.calcsize(layout)))


def _string(stream: BinaryIO) -> str:
    (length,) = _unpack(stream, "<Q")
    return stream.read(length).decode("utf-8", errors="replace")


def _skip_string(stream: BinaryIO) -> None:
    (length,) = _unpack(stream, "<Q")
    stream.seek(length, 1)


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _quantisation(file_type: Any) -> str | None:
    """llama.cpp's name of ``general.file_type``, e.g. Q4_K_M."""
    if not isinstance(file_type, int):
        return None
    try:
        from gguf.constants import LlamaFileType
    except ImportError:  # kbchat[local] brings gguf; without it the number is shown
        return f"type {file_type}"
    try:
        return LlamaFileType(file_type).name.removeprefix("MOSTLY_")
    except ValueError:
        return f"type {file_type}"


def human_bytes(count: int) -> str:
    """``count`` bytes in the largest of B, KB, MB, GB it reaches (powers of 1024, as the web
    page shows sizes); GB with one decimal."""
    if count >= 2**30:
        return f"{count / 2**30:.1f} GB"
    if count >= 2**20:
        return f"{count / 2**20:.0f} MB"
    if count >= 2**10:
        return f"{count / 2**10:.0f} KB"
    return f"{count} B"
